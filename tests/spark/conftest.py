"""A real local Spark for tests/spark/: ``local[2]``, small driver memory, no UI, bound to 127.0.0.1.

PySpark and Dask are optional extras, not part of the ``test`` extra: without them these tests
skip and say how to install them (``.ci/spark.sh`` does, in CI). One Spark session serves the
whole run and is stopped at the end.
"""
from __future__ import annotations

import os
import shutil
import sys

import pytest

from spark_helpers import SPARK_SKIP


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark.sql", reason=SPARK_SKIP, exc_type=ImportError)
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        pytest.skip("no Java on this machine: PySpark needs a JDK 17+ (apt-get install openjdk-17-jre-headless)")
    from pyspark.sql import SparkSession

    saved = {k: os.environ.get(k) for k in ("PYSPARK_PYTHON", "SPARK_LOCAL_IP")}
    # Python workers must run this interpreter (the venv with assess), not whatever "python3" is.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = (SparkSession.builder.master("local[2]").appName("assess-tests")
               .config("spark.driver.memory", "1g")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.sql.session.timeZone", "UTC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

