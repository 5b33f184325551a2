"""tinyllm: build, train and run a tiny GPT from scratch."""
__version__ = "0.1.0"
