"""SageMaker: the bring-your-own container's programs, the operators' configs, BYOM provisioning.

Kept free of imports on purpose: the container image copies ``ancora/__init__.py``, this file and
``container.py`` only, so importing the package must not pull in the rest of the stack.
"""
