"""Video stylization (`nst stylize-video`): clips in and out, optical flow, Ruder et al.'s consistency masks,
warping, the temporal term, the frame driver and `run.stylize_video`. Needs `pip install 'nst[video]'`
(OpenCV, PyAV), imported inside functions."""
