"""Every decision the Rich-Media Re-Ranker pipeline makes, as pure Python with no Triton import."""
