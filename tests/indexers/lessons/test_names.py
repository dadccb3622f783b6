"""Library names: import name ↔ pip name, spellings in prose."""

from __future__ import annotations

import pytest

from labmind.indexers.lessons import canonical, import_names, is_known
from labmind.indexers.lessons.names import domains, fold


@pytest.mark.parametrize(
    ("name", "pip"),
    [
        ("cv2", "opencv-python"),
        ("OpenCV", "opencv-python"),
        ("sklearn", "scikit-learn"),
        ("scikit_learn", "scikit-learn"),
        ("PIL", "pillow"),
        ("Pillow", "pillow"),
        ("yaml", "pyyaml"),
        ("PyYAML", "pyyaml"),
        ("bs4", "beautifulsoup4"),
        ("BeautifulSoup", "beautifulsoup4"),
        ("torch", "torch"),
        ("PyTorch", "torch"),
        ("tensorflow", "tensorflow"),
        ("jax", "jax"),
        ("sentence_transformers", "sentence-transformers"),
        ("torch.nn", "torch"),
        ("PIL.Image", "pillow"),
        ("My_Own.Lib", "my-own"),
    ],
)
def test_canonical_names(name: str, pip: str) -> None:
    assert canonical(name) == pip


def test_fold_is_how_pip_compares() -> None:
    assert fold("Typing_Extensions") == fold("typing-extensions") == "typing-extensions"
    assert fold("pdfminer.six") == "pdfminer-six"


def test_import_names_go_back() -> None:
    assert import_names("opencv-python") == {"cv2"}
    assert "cv2" in import_names("opencv-python-headless")
    assert import_names("scikit-learn") == {"sklearn"}
    assert "PIL" in import_names("pillow")
    assert import_names("numpy") == {"numpy"}


def test_known_and_unknown() -> None:
    assert is_known("cv2") and is_known("numpy") and is_known("Detectron2")
    assert not is_known("utils") and not is_known("my_project")


def test_domains() -> None:
    assert "image" in domains("cv2")
    assert "audio" in domains("librosa")
    assert domains("my-own") == ()
