"""Word count on Lambda: the example to start from (``make demo`` runs it on the local stack).

Trigger it from the UI form to count another input: ``input``, ``output`` and ``num_reducers``
are Params. The downstream task reads the result from XCom and prints the ten most frequent words.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task
from jobs import samples

from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator

with DAG(
    dag_id="smr_word_count",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["smr", "example"],
    doc_md=__doc__,
    params={
        "input": Param(samples.WORDS_INPUT, type="string", pattern=samples.S3_URI_PATTERN,
                       description="s3:// prefix (or key, or glob) of the text files to count"),
        "output": Param(f"{samples.ROOT}/word_count/output/", type="string", pattern=samples.S3_URI_PATTERN,
                        description="s3:// prefix the parts and _SUCCESS go to (replaced on a rerun)"),
        "num_reducers": Param(2, type="integer", minimum=1, maximum=1000,
                              description="reduce tasks, one output part each"),
    },
) as dag:

    @task
    def seed_sample_data() -> int:
        """Upload the generated sample inputs when the connection is the local stack."""
        return len(samples.seed_if_local("aws_default"))

    count_words = ServerlessMapReduceOperator(
        task_id="count_words",
        job="jobs.word_count:word_count",
        input="{{ params.input }}",
        output="{{ params.output }}",
        num_reducers="{{ params.num_reducers }}",
        overwrite=True,  # a rerun replaces the previous output
    )

    @task
    def show_top_words(result: dict) -> list:
        """Print the ten most frequent words from the parts the job wrote."""
        from jobs.results import read_pairs, top

        words = top(read_pairs(result), 10)
        for word, count in words:
            print(f"{count:8d}  {word}")
        return [[word, count] for word, count in words]

    seed_sample_data() >> count_words
    show_top_words(count_words.output)
