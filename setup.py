from setuptools import find_packages, setup

setup(
    name="ulmfit-tf",
    version="0.1.0",
    description="ULMFiT (Howard & Ruder 2018) in Keras 3 on TensorFlow",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ulmfit_tf", "ulmfit_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        # keras-hub pulls tensorflow-text, which pulls the full tensorflow
        # package (not tensorflow-cpu): install tensorflow first if you need
        # a particular build.
        "keras-hub>=0.32,<0.33",
        "numpy>=1.26",
        "regex>=2024.4",
        "tqdm>=4.66",
        "matplotlib>=3.8",
    ],
    extras_require={
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "nbclient>=0.10", "ipykernel>=6",
                "scikit-learn>=1.4"],
        # `ulmfit-tf baseline` and bench/classic_baselines.py.
        "baselines": ["scikit-learn>=1.4"],
        # The fastai reference, for parity tests and benchmarks only. Install
        # with the constraints file so pip takes the local CPU build of torch:
        #   pip install -e ".[fastai]" -c constraints-fastai.txt
        "fastai": ["torch==2.13.0", "fastai>=2.8,<2.9"],
    },
    entry_points={"console_scripts": ["ulmfit-tf=ulmfit_tf.cli:main"]},
)
