"""Build script for minireparam.

The C core in csrc/ is compiled through cffi (API mode) into ``minireparam._ccore``.
"""
from setuptools import find_packages, setup

setup(
    name="minireparam",
    version="0.1.0",
    description="A from-scratch reverse-mode autodiff engine on numpy with a small C core",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["minireparam", "minireparam.*"]),
    install_requires=["numpy>=1.23", "cffi>=1.15"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.80", "scipy>=1.9"],
        "examples": ["scikit-learn>=1.1", "matplotlib>=3.5", "tqdm>=4.60"],
        "bench": ["threadpoolctl>=3.1", "matplotlib>=3.5"],
    },
)
