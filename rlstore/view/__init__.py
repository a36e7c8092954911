"""`rlstore view`: a local web app to look at a store, served from the store without copying it.

    from rlstore.view import make_server
    server = make_server(Store("./store"), port=8800)   # bound to 127.0.0.1 unless told otherwise
    server.serve_forever()

Pages: the datasets; a dataset's versions with their lineage drawn as a graph; a version's
counts, features, statistics, quality report and a paged list of its episodes (return,
length); an episode's reward, action and discount over time, vector observations as traces,
image observations as a frame strip and an animation with a scrubber. Nothing is ever loaded
whole: a version's episodes are found by reading only the TFRecord headers of its shards (once,
then kept: versions never change) and an episode page decodes just that episode.
"""
from rlstore.view.server import make_server

__all__ = ["make_server"]
