"""`rmr eval`: offline evaluation of a deployment or a floor ranker on a labelled set (the paper's Tables 1-3)."""
