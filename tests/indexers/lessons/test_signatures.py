"""Error signatures that mean a library failed, and those that do not."""

from __future__ import annotations

from labmind.indexers.lessons.signatures import failures_in, installed_names


def libraries(text: str, installed: set[str] | None = None) -> list[str]:
    return [f.library for f in failures_in(text, installed or set())]


def test_missing_module_of_a_library() -> None:
    assert libraries("ModuleNotFoundError: No module named 'sklearn'") == ["scikit-learn"]


def test_missing_module_of_own_code_or_stdlib_is_not_a_library() -> None:
    assert libraries("ModuleNotFoundError: No module named 'utils'") == []
    assert libraries("ModuleNotFoundError: No module named 'tomllib'") == []


def test_an_unknown_package_counts_when_the_chat_installs_it() -> None:
    text = "ModuleNotFoundError: No module named 'fancyaug'"
    assert libraries(text) == []
    assert libraries(text, installed_names(["pip install fancyaug"])) == ["fancyaug"]


def test_cannot_import_name_blames_the_library() -> None:
    text = "ImportError: cannot import name 'soft_unicode' from 'markupsafe'"
    assert libraries(text) == ["markupsafe"]


def test_shared_object_errors_blame_the_importing_library() -> None:
    text = (
        '  File "/x/site-packages/cv2/__init__.py", line 181, in <module>\n'
        "ImportError: libGL.so.1: cannot open shared object file: No such file or directory"
    )
    assert libraries(text) == ["opencv-python"]
    pasted = "    import torch\nImportError: libcudnn.so.8: cannot open shared object file"
    assert libraries(pasted) == ["torch"]


def test_removed_attribute_of_a_library_module() -> None:
    assert libraries("AttributeError: module 'numpy' has no attribute 'float'") == ["numpy"]
    assert libraries("AttributeError: module 'mymodel' has no attribute 'Net'") == []


def test_build_failures_and_missing_versions() -> None:
    assert libraries("ERROR: Failed building wheel for dlib") == ["dlib"]
    assert libraries("Building wheel for pyaudio (pyproject.toml) ... error") == ["pyaudio"]
    text = "ERROR: No matching distribution found for faiss-gpu"
    assert libraries(text) == ["faiss-gpu"]


def test_version_conflict_blames_the_package_with_the_wrong_version() -> None:
    text = (
        "tensorboard 2.15.1 requires protobuf<4.24,>=3.19.6, but you have protobuf 4.25.3 "
        "which is incompatible."
    )
    assert libraries(text) == ["protobuf"]


def test_numpy_abi_break() -> None:
    text = "A module that was compiled using NumPy 1.x cannot be run in\nNumPy 2.0.0 as it"
    assert libraries(text) == ["numpy"]


def test_user_bugs_and_circular_imports_are_not_library_failures() -> None:
    assert libraries("KeyError: 'label'") == []
    assert libraries("RuntimeError: mat1 and mat2 shapes cannot be multiplied") == []
    circular = (
        "AttributeError: partially initialized module 'random' has no attribute 'randint' "
        "(most likely due to a circular import)"
    )
    assert libraries(circular) == []


def test_installed_names_reads_install_commands() -> None:
    text = 'pip install -U "numpy<2" opencv-python-headless\nconda install -c conda-forge gdal'
    assert installed_names([text]) >= {"numpy", "opencv-python-headless", "gdal"}
