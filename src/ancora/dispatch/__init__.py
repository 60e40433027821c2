"""Dispatches: scheduled batch scoring of the rows waiting in a datalake, with the champion.

``datalake`` reads the awaiting rows and writes predictions back; ``events`` records every dispatch,
its timeline and its predictions; ``run`` is one dispatch; ``seed`` builds a demo datalake. The CLI
(`ancora dispatch`), the DAG ``covertype_dispatch`` and the inference API's ``/dispatches`` are thin
faces over them.
"""
