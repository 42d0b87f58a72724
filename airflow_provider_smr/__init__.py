"""Serverless MapReduce on AWS Lambda and S3, as an Apache Airflow provider."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the types behind __getattr__'s lazy names
    from airflow_provider_smr.job import (
        MapReduceJob,
        Step,
        batch_mapper,
        fold,
        identity,
        range_partitioner,
        sample_boundaries,
    )

__version__ = "0.1.0"

__all__ = ["MapReduceJob", "Step", "__version__", "batch_mapper", "fold", "get_provider_info", "identity",
           "range_partitioner", "sample_boundaries"]

_JOB_API = ("MapReduceJob", "Step", "batch_mapper", "fold", "identity", "range_partitioner",
            "sample_boundaries")


def __getattr__(name: str) -> object:
    # Importing the provider must stay cheap (DAG files are parsed often): load the job API lazily.
    if name in _JOB_API:
        from airflow_provider_smr import job

        return getattr(job, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_provider_info() -> dict:
    """Describe this provider to Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-smr",
        "name": "Serverless MapReduce",
        "description": "Run MapReduce jobs on AWS Lambda with S3 as the shuffle, from Airflow tasks.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Serverless MapReduce",
                "external-doc-url": "https://github.com/airflow-provider-smr/airflow-provider-smr",
                "tags": ["aws"],
            }
        ],
        "hooks": [{"integration-name": "Serverless MapReduce",
                   "python-modules": ["airflow_provider_smr.hooks.smr"]}],
        "operators": [{"integration-name": "Serverless MapReduce",
                       "python-modules": ["airflow_provider_smr.operators.smr",
                                          "airflow_provider_smr.operators.stack"]}],
        "sensors": [{"integration-name": "Serverless MapReduce",
                     "python-modules": ["airflow_provider_smr.sensors.smr"]}],
        "triggers": [{"integration-name": "Serverless MapReduce",
                      "python-modules": ["airflow_provider_smr.triggers.smr"]}],
        "extra-links": [
            "airflow_provider_smr.links.smr.SMROutputLink",
            "airflow_provider_smr.links.smr.SMRLogsLink",
            "airflow_provider_smr.links.smr.SMRReportLink",
        ],
    }
