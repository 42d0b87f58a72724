"""AMPLab big-data benchmark query 2: ``SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uservisits
GROUP BY SUBSTR(sourceIP, 1, 8)`` over ``uservisits`` CSV rows (header row gives the field names)."""

from __future__ import annotations

import math

from airflow_provider_smr import MapReduceJob

USERVISITS_FIELDS = ("sourceIP", "destURL", "visitDate", "adRevenue", "userAgent", "countryCode",
                     "languageCode", "searchWord", "duration")


def ip_prefix_revenue(row):
    yield row["sourceIP"][:8], float(row["adRevenue"])


def revenue_total(prefix, revenues):
    # fsum is exactly rounded, so the total does not depend on the order values arrive in.
    yield prefix, round(math.fsum(revenues), 6)


revenue_by_ip_prefix = MapReduceJob(mapper=ip_prefix_revenue, reducer=revenue_total,
                                    input_format="csv", name="amplab_q2")
