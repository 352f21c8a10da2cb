"""Packaging for dockerpkg."""

from setuptools import find_packages, setup

setup(
    name="dockerpkg",
    version="0.1.0",
    description="Build, verify, publish, prune and version trees of Docker images",
    long_description=open("README.md", encoding="utf-8").read(),  # noqa: SIM115
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["dockerpkg", "dockerpkg.*"]),
    install_requires=[
        "argh>=0.31",
        "attrs>=23.1",
        "docker>=7.0",
        "jinja2>=3.1",
        "python-debian>=0.1.49",
        "requests>=2.28",
        "strictyaml>=1.7",
    ],
    extras_require={
        "test": [
            "coverage>=7.4",
            "hypothesis>=6.100",
            "mypy>=1.10",
            "pytest>=8.0",
            "ruff>=0.5",
            "types-requests",
        ],
    },
    entry_points={"console_scripts": ["dockerpkg = dockerpkg.cli:main"]},
)
