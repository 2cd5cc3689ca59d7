"""INT8 for the CPU runtimes: calibration on the user's images, and the guard that measures on
held-out images how far the INT8 network's answers move from FP32's, and refuses beyond a limit."""
