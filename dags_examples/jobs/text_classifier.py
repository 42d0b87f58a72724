"""mrjob's ``mr_text_classifier``: a Naive-Bayes-like text classifier that is not sensitive to
document length, trained and applied in one four-step job.

Each input object is one document named ``<id>-<cat>-not_<cat>...txt``: its id and the
categories it is known to belong (``cat``) or not to belong (``not_cat``) to. About half of the
documents (by a hash of their text) are a test set, not used for training. The output holds each
document with ``cat_to_score`` (positive: likely in the category) and each scored n-gram's
``cat_to_score``. Parameters (``job_params`` / ``--param``): ``min_df`` (2), ``max_df``
(10,000,000), ``max_ngram_size`` (4), ``stop_words`` (a list), ``no_test_set`` (false).

Counters: ``Document key collision`` (per id seen twice), ``Exceeded max df`` (per n-gram dropped)
and ``documents`` (``test`` / ``training``).
"""

from __future__ import annotations

import hashlib
import math
import posixpath
import re
from collections import defaultdict

from airflow_provider_smr import MapReduceJob, Step
from lambda_handlers.context import increment_counter, job_params

WORD_RE = re.compile(r"[\w']+", re.UNICODE)
STOP_WORDS = ["a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "he", "her", "his",
              "i", "if", "in", "into", "is", "it", "its", "of", "on", "or", "she", "that", "the", "their",
              "them", "they", "this", "to", "was", "we", "were", "with", "you", "your"]


def option(name):
    defaults = {"min_df": 2, "max_df": 10_000_000, "max_ngram_size": 4, "stop_words": STOP_WORDS,
                "no_test_set": False}
    return job_params().get(name, defaults[name])


def parse_doc_filename(uri):
    """``s3://b/some_id-cat1-not_cat2.txt`` -> ``{"id": "some_id", "cats": {"cat1": True, "cat2": False}}``."""
    doc_id, *parts = posixpath.basename(uri).split(".")[0].split("-")
    return {"id": doc_id, "cats": {p[4:] if p.startswith("not_") else p: not p.startswith("not_") for p in parts}}


def count_ngrams(text, max_ngram_size, stop_words):
    """``{(n, ngram): times}``, with ``(n, None)``: the number of n-grams of size n (ANY ngram)."""
    stop = set(stop_words)
    words = [w.lower() for w in WORD_RE.findall(text) if w.lower() not in stop]
    counts = defaultdict(int)
    for i in range(len(words)):
        for n in range(1, max_ngram_size + 1):
            if i + n <= len(words):
                counts[(n, " ".join(words[i:i + n]))] += 1
    for n in range(1, max_ngram_size + 1):
        counts[(n, None)] = len(words) - n + 1
    return counts


def parse_doc(record):
    """Step 1 mapper, one whole document: its n-grams (when it trains) and the document itself."""
    uri, body = record
    doc, text = parse_doc_filename(uri), body.decode("utf-8")
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    doc["in_test_set"] = not option("no_test_set") and bool(int(digest[-1], 16) % 2)
    increment_counter("documents", "test" if doc["in_test_set"] else "training")
    counts = count_ngrams(text, option("max_ngram_size"), option("stop_words"))
    if not doc["in_test_set"]:
        for ngram, count in counts.items():
            yield ("ngram", ngram), (count, doc["cats"])
    doc["ngram_counts"] = list(counts.items())
    yield ("doc", doc["id"]), doc


def count_ngram_freq(type_and_key, values):
    """Step 1 reducer: per n-gram, in how many documents of each category (df) and how often (tf)."""
    key_type, key = type_and_key
    if key_type == "doc":
        docs = list(values)
        if len(docs) > 1:
            increment_counter("Document key collision", str(key))
        yield ("doc", key), docs[0]
        return
    total_df, cat_to_df, cat_to_tf = 0, defaultdict(int), defaultdict(int)
    for count, cats in values:
        total_df += 1
        for cat in cats.items():
            cat_to_df[cat] += 1
            cat_to_tf[cat] += count
    if total_df >= option("min_df"):
        yield ("global", None), (key, dict(cat_to_df), dict(cat_to_tf))


def score_ngrams(type_and_key, values):
    """Step 2 reducer: score every n-gram for every category (one reducer sees them all); send each
    document to the n-grams it contains."""
    key_type, key = type_and_key
    if key_type == "doc":
        doc = next(iter(values))
        yield ("doc", key), doc
        for (n, ngram), _count in doc["ngram_counts"]:
            if ngram is not None:
                yield ("ngram", (n, ngram)), ("doc_id", key)
        return
    info = {ngram: (df, tf) for ngram, df, tf in values}
    m = len(info)  # the number of possible n-grams, roughly
    for (n, ngram), (_df, cat_to_tf) in info.items():
        cat_to_t = info[(n, None)][1]
        cat_to_p = {cat: (cat_to_tf.get(cat, 0) + 2.0 / m) / (t + 2) for cat, t in cat_to_t.items()}
        cat_to_score = {cat: math.log(cat_to_p.get((cat, True), 1.0 / m))
                        - math.log(cat_to_p.get((cat, False), 1.0 / m)) for cat, _ in cat_to_t}
        yield ("ngram", (n, ngram)), ("cat_to_score", cat_to_score)


def score_documents_by_ngram(type_and_key, values):
    """Step 3 reducer: send each n-gram's scores to the documents that contain it."""
    key_type, key = type_and_key
    if key_type == "doc":
        yield ("doc", key), ("doc", next(iter(values)))
        return
    doc_ids, cat_to_score = [], None
    for value_type, value in values:
        if value_type == "cat_to_score":
            cat_to_score = value
            continue
        doc_ids.append(value)
        if len(doc_ids) > option("max_df"):
            increment_counter("Exceeded max df", repr(key))
            return
    if cat_to_score is not None:
        for doc_id in doc_ids:
            yield ("doc", doc_id), ("scores", (key, cat_to_score))
        yield ("cat_to_score", key), cat_to_score


def score_documents(type_and_key, values):
    """Step 4 reducer: a document's score per category, the sum over n-gram sizes of the average
    score of its n-grams of that size."""
    key_type, key = type_and_key
    if key_type == "cat_to_score":
        yield ("cat_to_score", key), next(iter(values))
        return
    doc, scores = None, []
    for value_type, value in values:
        if value_type == "doc":
            doc = value
        else:
            scores.append(value)
    counts = dict(doc.pop("ngram_counts"))
    totals = defaultdict(lambda: defaultdict(float))
    for (n, ngram), cat_to_score in scores:
        for cat, score in cat_to_score.items():
            totals[cat][n] += score * counts[(n, ngram)]
    doc["cat_to_score"] = {cat: sum(total / max(counts[(n, None)], 1) for n, total in by_n.items())
                           for cat, by_n in totals.items()}
    yield ("doc", key), doc


text_classifier = MapReduceJob(
    steps=[Step(mapper=parse_doc, reducer=count_ngram_freq), Step(reducer=score_ngrams),
           Step(reducer=score_documents_by_ngram), Step(reducer=score_documents)],
    input_format="whole", serializer="pickle", name="text_classifier")
