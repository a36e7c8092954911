"""Replay, learner and actor as three `rlstore run --role` processes sharing only an s3:// store.

Each role gets its own `--out` directory and its own read cache (`RLSTORE_CACHE`), as on three
hosts; the store is a bucket on a moto S3 server on 127.0.0.1 (`pip install 'moto[server]'`,
part of the test extra). The actor writes its episodes back into the bucket; at the end a fourth
"host" lists and validates them. Not part of `make test` (three TensorFlow processes, ~2-3 min):

    .venv/bin/python scripts/s3_three_roles.py [WORK_DIR]
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

RLSTORE = str(Path(sys.executable).with_name("rlstore"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    import boto3
    from moto.server import ThreadedMotoServer

    work = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="rlstore-three-roles-"))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo",
                      AWS_DEFAULT_REGION="us-east-1", RLSTORE_ROOT="s3://three-roles/rl")
    boto3.client("s3").create_bucket(Bucket="three-roles")

    def on_host(name: str) -> dict[str, str]:
        return {**os.environ, "RLSTORE_CACHE": str(work / name / "cache")}

    try:
        subprocess.run([RLSTORE, "record", "--env", "catch", "--policy", "expert", "--episodes", "20",
                        "--dataset", "demos"], env=on_host("A"), check=True)
        common = ["run", "dqfd", "--env", "catch", "--demos", "demos@1", "--env-steps", "300",
                  "--replay-address", f"localhost:{free_port()}", "--learner-address", f"localhost:{free_port()}"]
        replay = subprocess.Popen([RLSTORE, *common, "--out", str(work / "A/run"), "--role", "replay", "--expose"],
                                  env=on_host("A"))
        learner = subprocess.Popen([RLSTORE, *common, "--out", str(work / "B/run"), "--role", "learner", "--expose"],
                                   env=on_host("B"))
        actor = subprocess.run([RLSTORE, *common, "--out", str(work / "C/run"), "--role", "actor", "--index", "0",
                                "--write-back", "online", "--commit-every", "10"], env=on_host("C"))
        codes = [actor.returncode]
        for process in (learner, replay):
            process.send_signal(signal.SIGTERM)
            codes.append(process.wait(120))
        listing = subprocess.run([RLSTORE, "list"], env=on_host("D"), capture_output=True, text=True)
        check = subprocess.run([RLSTORE, "validate", "online"], env=on_host("D"), capture_output=True, text=True)
        print(listing.stdout + check.stdout, end="")
        print(f"exit codes: actor, learner, replay {codes}; validate {check.returncode}")
        return 0 if codes == [0, 0, 0] and check.returncode == 0 else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
