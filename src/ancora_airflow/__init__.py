"""Airflow's side of Ancora, shipped as package data: ``dags/`` (Airflow's DAG folder) and ``plugins/``
(its plugins folder, which Airflow puts on ``sys.path``). ``ancora.locations`` points Airflow at them;
nothing imports this package."""
