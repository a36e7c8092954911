"""`rlstore view`: its pages fetched over real HTTP from a server bound to 127.0.0.1."""
import html
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from rlstore.view import make_server


@pytest.fixture(scope="module")
def viewer(framework_store):
    store, originals = framework_store
    server = make_server(store, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}", store, originals
    server.shutdown()
    server.server_close()


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_binds_to_loopback_and_lists_the_datasets(viewer):
    base, _, _ = viewer
    assert base.startswith("http://127.0.0.1:")
    status, kind, body = _get(base + "/")
    assert status == 200 and kind.startswith("text/html")
    page = body.decode()
    assert "/dataset?name=vec" in page and "/dataset?name=rich" in page and ">95<" in page


def test_dataset_page_draws_versions_and_lineage(viewer):
    base, _, _ = viewer
    page = _get(base + "/dataset?name=vec")[2].decode()
    assert "<svg" in page and "vec@1" in page and "vec@2" in page
    assert "/version?name=vec&amp;v=2" in page


def test_version_page_lists_episodes_with_return_and_length(viewer):
    base, _, originals = viewer
    page = _get(base + "/version?name=vec&v=2")[2].decode()
    assert "Episodes 0-9 of 10" in page
    first = originals["vec"][0]["steps"]
    row = re.search(r'i=0">0</a></td><td>([^<]+)</td><td>(\d+)</td>', page)
    assert float(row.group(1)) == pytest.approx(float(np.sum(first["reward"])), rel=1e-3)
    assert int(row.group(2)) == len(first["reward"])


def test_episode_page_plots_and_image_frames(viewer):
    base, _, originals = viewer
    page = _get(base + "/episode?name=vec&v=2&i=3")[2].decode()
    assert page.count("<polyline") >= 3 and "observation" in page and "next episode" in page
    page = _get(base + "/episode?name=rich&i=1")[2].decode()
    assert 'type="range"' in page and "/animation.gif?" in page
    frame = re.search(r'src="(/frame\?[^"]+)"', page).group(1).replace("&amp;", "&")
    status, kind, png = _get(base + frame)
    assert status == 200 and kind == "image/png" and png.startswith(b"\x89PNG")
    from io import BytesIO

    from PIL import Image

    t = int(re.search(r"t=(\d+)", frame).group(1))
    expected = originals["rich"][1]["steps"]["observation"]["pixels"][t]
    np.testing.assert_array_equal(np.asarray(Image.open(BytesIO(png))), expected)
    status, kind, gif = _get(base + "/animation.gif?name=rich&v=1&i=1&field=observation/pixels")
    assert kind == "image/gif" and gif.startswith(b"GIF8")


def test_unknown_things_are_a_404_naming_them(viewer):
    base, _, _ = viewer
    for address, words in (("/dataset?name=nothing", "no dataset named 'nothing'"), ("/episode?name=vec&i=99", "no episode 99"),
                           ("/version?name=vec&v=7", "no version 7"), ("/version?name=..%2Fx", "")):
        with pytest.raises(urllib.error.HTTPError) as caught:
            _get(base + address)
        assert caught.value.code == 404 and words in html.unescape(caught.value.read().decode())


def test_cli_serves_until_stopped(framework_store):
    store, _ = framework_store
    process = subprocess.Popen([sys.executable, "-m", "rlstore", "--store", str(store.root), "view", "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        assert _get(url)[0] == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
