"""frozenlake_ift: the Frozen-Lake study of Intuitive Fine-Tuning (arXiv 2405.11870), runnable.

Submodules are imported on demand (``from frozenlake_ift import lakes``); importing the
package itself runs nothing and pulls in neither matplotlib nor transformers.
"""

__version__ = "0.1.0"
