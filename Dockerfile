# The local stack as a container (docker-compose.yaml's smr-local service).
# Built FROM the same Airflow image as the airflow service so both run the same Python minor
# version: pickled job code only runs under the Python that pickled it.
FROM apache/airflow:3.3.2
USER root
COPY --chown=airflow:root . /opt/smr
USER airflow
RUN pip install --no-cache-dir -e '/opt/smr[local]'
EXPOSE 4566
CMD ["smr", "local", "up", "--host", "0.0.0.0", "--port", "4566"]
