"""What each quality metric scores, in one place: the metric classes (elt/evaluation/metrics.py)
and the aggregate's wording read it, without the aggregate importing the networks."""

MODALITY = {"fid": "image", "fvd": "video"}


def samples_word(metric: str) -> str:
    """"images" (FID, and any metric not listed) or "clips" (FVD, a video metric)."""
    return "clips" if MODALITY.get(metric) == "video" else "images"
