"""The Airflow UI plugin: a job's report, live status, function logs and output, per task instance.

:mod:`.smr` registers :class:`~airflow_provider_smr.plugins.smr.SMRPlugin` (entry point
``airflow.plugins``): a FastAPI app mounted on the API server under :data:`.urls.URL_PREFIX` and an
"SMR job" tab on the task instance page. The operator's extra links open its pages
(:func:`.urls.page_url`). Importing this package stays cheap: FastAPI and boto3 load with the app.
"""
