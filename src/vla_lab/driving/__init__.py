"""The maths and language of driving, with no file I/O: unicycle action space, metrics, commands."""
