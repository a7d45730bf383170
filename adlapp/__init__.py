"""adlapp: train deep-learning variants with several seeds, watch them learn, compare them honestly.

The core never imports streamlit, and viewer paths (config, store, bundle, stats, charts) never import torch.
"""
__version__ = "0.1.0"
