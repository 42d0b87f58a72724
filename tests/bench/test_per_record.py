"""bench/per_record.py: the profile summary reads py-spy's raw stacks; the CPU pass runs every form."""

from __future__ import annotations

from bench import per_record

TASK = 'process 2:"bootstrap.py";handler (lambda_handlers/mapper.py:41)'
RAW = "\n".join([
    'process 1:"python run.py";' + TASK + ";add (lambda_handlers/mapper.py:190) 30",
    TASK + ";words (<dynamic-code>:3) 10",
    'process 2:"bootstrap.py";pump (lambda_handlers/io/splits.py:314);'
    "prefetched.<locals>.pump (lambda_handlers/io/splits.py:315);wait (threading.py:320) 50",
    'process 3:"server";readinto (socket.py:706) 99',
]) + "\n"


def test_the_profile_counts_task_main_threads_by_their_leaf_function(tmp_path):
    raw = tmp_path / "p.raw"
    raw.write_text(RAW)
    samples, total = per_record.profile_table(str(raw))
    assert total == 40 and samples == {"add (mapper.py)": 30, "words (<dynamic-code>)": 10}


def test_the_cpu_pass_times_every_form_and_the_floor():
    text = b"a b a\nc a\n" * 200
    assert set(per_record.map_cpu(text, rounds=1)) == {"fold", "total", "none", "counter floor"}
