"""Video stylization's method: clips in and out, optical flow, Ruder et al.'s consistency masks, warping
and the temporal loss term. Needs `pip install 'nst[video]'` (OpenCV, PyAV), imported inside functions."""
