"""Library names: import name ↔ pip name, spellings in prose, and what each library is for.

``canonical`` folds any spelling (``cv2``, ``OpenCV``, ``opencv_python``) to the pip name
(``opencv-python``); ``import_names`` goes the other way for pre-flight checks. The map
covers the common ML, data and web libraries; a name it does not know is folded to lower
case with ``_`` and ``.`` as ``-``, which is how pip compares names.
"""

from __future__ import annotations

import re
import sys
from typing import Final


def _words(text: str) -> list[str]:
    return text.split()


_IMPORT_TO_PIP: Final[dict[str, str]] = {
    "cv2": "opencv-python",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "dotenv": "python-dotenv",
    "dateutil": "python-dateutil",
    "Crypto": "pycryptodome",
    "OpenSSL": "pyopenssl",
    "attr": "attrs",
    "gi": "pygobject",
    "serial": "pyserial",
    "usb": "pyusb",
    "magic": "python-magic",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "fitz": "pymupdf",
    "faiss": "faiss-cpu",
    "umap": "umap-learn",
    "haiku": "dm-haiku",
    "hydra": "hydra-core",
    "llama_cpp": "llama-cpp-python",
    "whisper": "openai-whisper",
    "jwt": "pyjwt",
    "pynvml": "nvidia-ml-py",
    "osgeo": "gdal",
    "pdfminer": "pdfminer-six",
    "camelot": "camelot-py",
    "tabula": "tabula-py",
    "speech_recognition": "speechrecognition",
    "absl": "absl-py",
    "gin": "gin-config",
    "open_clip": "open-clip-torch",
    "pyro": "pyro-ppl",
    "paddle": "paddlepaddle",
    "mpl_toolkits": "matplotlib",
    "google.protobuf": "protobuf",
    "tensorflow_addons": "tensorflow-addons",
    "tensorflow_datasets": "tensorflow-datasets",
    "tensorflow_hub": "tensorflow-hub",
    "tensorflow_probability": "tensorflow-probability",
    "torch_geometric": "torch-geometric",
    "pytorch_lightning": "pytorch-lightning",
    "sentence_transformers": "sentence-transformers",
    "huggingface_hub": "huggingface-hub",
    "stable_baselines3": "stable-baselines3",
    "flash_attn": "flash-attn",
    "face_recognition": "face-recognition",
    "llama_index": "llama-index",
    "fbprophet": "fbprophet",
    "MySQLdb": "mysqlclient",
    "psycopg2": "psycopg2",
    "win32api": "pywin32",
    "Levenshtein": "python-levenshtein",
    "tflite_runtime": "tflite-runtime",
    "imblearn": "imbalanced-learn",
    "category_encoders": "category-encoders",
}

_KNOWN_PIP: Final[frozenset[str]] = frozenset(
    _words(
        """
        numpy scipy pandas polars pyarrow fastparquet matplotlib seaborn plotly bokeh altair
        statsmodels sympy networkx numba cython pybind11 cupy pycuda numexpr xarray zarr
        h5py netcdf4 tables dask modin vaex pyspark torch torchvision torchaudio torchtext
        torchdata torchmetrics timm einops kornia lpips lightning pytorch-lightning
        accelerate deepspeed apex xformers triton bitsandbytes flash-attn transformers
        datasets tokenizers sentencepiece tiktoken peft trl vllm diffusers safetensors
        huggingface-hub sentence-transformers open-clip-torch tensorflow tensorflow-gpu
        tensorflow-addons tensorflow-datasets tensorflow-hub tensorflow-probability keras
        keras-tuner tensorboard tensorboardx tflite-runtime jax jaxlib flax optax chex
        equinox dm-haiku orbax numpyro scikit-learn scikit-image xgboost lightgbm catboost
        imbalanced-learn category-encoders optuna hyperopt shap lime captum umap-learn
        hdbscan faiss-cpu faiss-gpu annoy hnswlib opencv-python opencv-python-headless
        opencv-contrib-python pillow pillow-simd imageio albumentations imgaug scikit-video
        moviepy ffmpeg-python av decord librosa soundfile pydub torchcrepe pyaudio
        sounddevice openai-whisper faster-whisper spacy nltk gensim fasttext jieba textblob
        stanza onnx onnxruntime onnxruntime-gpu tensorrt openvino coremltools gym gymnasium
        stable-baselines3 mujoco mujoco-py pybullet open3d trimesh pytorch3d pycocotools
        detectron2 mmcv mmdet ultralytics mediapipe dlib face-recognition easyocr
        pytesseract paddlepaddle paddleocr mxnet theano torch-geometric torch-scatter
        torch-sparse dgl wandb mlflow tensorboard comet-ml neptune clearml sacred hydra-core
        omegaconf ray horovod mpi4py nvidia-ml-py gputil psutil prophet fbprophet pmdarima
        sktime darts tsfresh arch lifelines pymc pystan emcee arviz pyro-ppl requests httpx
        aiohttp urllib3 flask django fastapi uvicorn gunicorn starlette streamlit gradio
        dash selenium playwright scrapy beautifulsoup4 lxml html5lib pydantic sqlalchemy
        psycopg2 psycopg2-binary pymongo redis mysqlclient boto3 gcsfs s3fs fsspec pyyaml
        python-dotenv python-dateutil pycryptodome pyopenssl cryptography pyjwt attrs
        pygobject pyserial pyusb python-magic python-docx python-pptx pymupdf pypdf pypdf2
        pdfminer-six pdfplumber camelot-py tabula-py reportlab openai anthropic langchain
        langchain-community llama-index chromadb pinecone-client llama-cpp-python gdal fiona
        rasterio shapely geopandas pyproj cartopy basemap folium jupyter jupyterlab notebook
        ipywidgets ipykernel nbconvert papermill pyqt5 pyqt6 pyside2 pyside6 pygame kivy
        tqdm joblib rich click typer loguru absl-py gin-config ml-collections jaxtyping
        beartype speechrecognition pyttsx3 python-levenshtein rapidfuzz fuzzywuzzy thefuzz
        protobuf grpcio jinja2 markupsafe typing-extensions packaging six
        openpyxl xlwt xlrd xlsxwriter pywin32 wordcloud pandas-profiling ydata-profiling
        setuptools wheel pip conda poetry
        """
    )
)

_PROSE_NAMES: Final[dict[str, str]] = {
    "opencv": "opencv-python",
    "open-cv": "opencv-python",
    "pytorch": "torch",
    "pil": "pillow",
    "beautifulsoup": "beautifulsoup4",
    "beautiful-soup": "beautifulsoup4",
    "scikit": "scikit-learn",
    "sk-learn": "scikit-learn",
    "tf": "tensorflow",
    "hf-transformers": "transformers",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "cv2": "opencv-python",
    "faiss": "faiss-cpu",
    "pdfminer": "pdfminer-six",
    "pdfminer-six": "pdfminer-six",
    "pynvml": "nvidia-ml-py",
    "pytorch-geometric": "torch-geometric",
    "pyg": "torch-geometric",
    "lightning-ai": "lightning",
    "xgb": "xgboost",
    "lgbm": "lightgbm",
    "hf-datasets": "datasets",
    "keras-3": "keras",
    "tf-keras": "keras",
    "moviepy-editor": "moviepy",
    "psycopg": "psycopg2",
    "mujoco-py": "mujoco-py",
    "whisper": "openai-whisper",
}

AMBIGUOUS: Final[frozenset[str]] = frozenset(
    _words(
        """
        datasets tokenizers transformers requests rich click black dash ray gym tables
        fabric keyring notebook poetry lime shap prophet pip wheel magic serial attr attrs
        arch darts sacred av jupyter accelerate trl peft optax chex orbax flax apex triton
        numba setuptools conda diffusers stanza fiona basemap folium kivy gin typer loguru
        tqdm joblib psutil redis streamlit gradio httpx starlette evaluate
        """
    )
)
"""Library names that are also ordinary words; in prose they count only when written as
code (``datasets``), next to "library"/"package"/"module", or in an install command."""

_STDLIB: Final[frozenset[str]] = frozenset(sys.stdlib_module_names)

_DOMAINS: Final[dict[str, list[str]]] = {
    "image": _words(
        """
        opencv-python opencv-python-headless opencv-contrib-python pillow pillow-simd
        scikit-image imageio albumentations imgaug kornia timm torchvision dlib mediapipe
        face-recognition ultralytics detectron2 mmdet mmcv pycocotools easyocr pytesseract
        open-clip-torch diffusers lpips
        """
    ),
    "video": _words(
        """
        opencv-python moviepy ffmpeg-python av decord scikit-video imageio
        """
    ),
    "audio": _words(
        """
        librosa soundfile pydub torchaudio pyaudio sounddevice openai-whisper faster-whisper
        speechrecognition pyttsx3 torchcrepe
        """
    ),
    "text": _words(
        """
        spacy nltk gensim fasttext jieba textblob stanza transformers tokenizers
        sentencepiece tiktoken sentence-transformers
        """
    ),
    "llm": _words(
        """
        transformers peft trl vllm bitsandbytes flash-attn xformers deepspeed accelerate
        llama-cpp-python openai anthropic langchain llama-index tiktoken
        """
    ),
    "table": _words(
        """
        pandas polars pyarrow fastparquet dask modin vaex pyspark
        """
    ),
    "plot": _words(
        """
        matplotlib seaborn plotly bokeh altair
        """
    ),
    "pdf": _words(
        """
        pypdf pypdf2 pdfminer-six pdfplumber pymupdf camelot-py tabula-py reportlab
        """
    ),
    "web": _words(
        """
        requests httpx aiohttp selenium playwright scrapy beautifulsoup4 lxml html5lib flask
        django fastapi
        """
    ),
    "geo": _words(
        """
        gdal fiona rasterio shapely geopandas pyproj cartopy basemap folium
        """
    ),
    "3d": ["open3d", "trimesh", "pytorch3d"],
    "rl": _words(
        """
        gym gymnasium stable-baselines3 mujoco mujoco-py pybullet
        """
    ),
    "graph": _words(
        """
        networkx torch-geometric torch-scatter torch-sparse dgl
        """
    ),
    "gpu": _words(
        """
        torch cupy pycuda numba nvidia-ml-py gputil jax jaxlib tensorflow triton
        """
    ),
    "time series": _words(
        """
        prophet fbprophet pmdarima sktime darts tsfresh statsmodels
        """
    ),
    "tracking": _words(
        """
        wandb mlflow tensorboard comet-ml neptune clearml
        """
    ),
    "ml": _words(
        """
        scikit-learn xgboost lightgbm catboost optuna hyperopt shap lime umap-learn hdbscan
        faiss-cpu
        """
    ),
    "deep learning": _words(
        """
        torch tensorflow keras jax flax lightning pytorch-lightning
        """
    ),
    "export": _words(
        """
        onnx onnxruntime tensorrt openvino coremltools
        """
    ),
}

DOMAIN_WORDS: Final[dict[str, list[str]]] = {
    "image": _words(
        """
        image images picture pictures photo photos jpeg jpg png resize crop thumbnail pixel
        pixels vision augmentation augment camera face faces ocr detection
        """
    ),
    "video": _words(
        """
        video videos frame frames mp4 webcam clip clips
        """
    ),
    "audio": _words(
        """
        audio sound speech wav mp3 waveform spectrogram voice music
        """
    ),
    "text": _words(
        """
        text tokenize tokenizer nlp sentence sentences corpus language words
        """
    ),
    "llm": _words(
        """
        llm lora finetune fine-tune quantize quantization inference generate
        """
    ),
    "table": _words(
        """
        dataframe csv parquet table tables columns rows
        """
    ),
    "plot": _words(
        """
        plot plots chart charts figure figures visualize visualise graph
        """
    ),
    "pdf": _words(
        """
        pdf pdfs document documents
        """
    ),
    "web": _words(
        """
        scrape scraping crawl http api website html download
        """
    ),
    "geo": _words(
        """
        map maps geo geospatial raster shapefile coordinates gis
        """
    ),
    "3d": _words(
        """
        mesh point cloud 3d
        """
    ),
    "rl": _words(
        """
        reinforcement agent environment env reward
        """
    ),
    "graph": _words(
        """
        graph graphs gnn node nodes edges
        """
    ),
    "gpu": _words(
        """
        gpu gpus cuda memory
        """
    ),
    "time series": _words(
        """
        forecast forecasting series seasonal
        """
    ),
    "tracking": _words(
        """
        tracking experiment experiments logging dashboard
        """
    ),
    "ml": _words(
        """
        classifier regression clustering features hyperparameter
        """
    ),
    "deep learning": _words(
        """
        model training train network neural
        """
    ),
    "export": _words(
        """
        onnx export deploy deployment
        """
    ),
}

_FOLD = re.compile(r"[-_.\s]+")


def fold(name: str) -> str:
    """pip's comparison form: lower case, runs of ``-``, ``_``, ``.`` as one ``-``."""
    return _FOLD.sub("-", name.strip().lower()).strip("-")


_IMPORT_FOLDED: Final[dict[str, str]] = {fold(k): v for k, v in _IMPORT_TO_PIP.items()}
_PROSE_FOLDED: Final[dict[str, str]] = {fold(k): v for k, v in _PROSE_NAMES.items()}


def canonical(name: str) -> str:
    """The pip name for an import name, a pip name or a common spelling of a library."""
    folded = fold(name)
    top = fold(name.split(".")[0]) if "." in name and fold(name) not in _IMPORT_FOLDED else folded
    for key in (folded, top):
        if key in _IMPORT_FOLDED:
            return _IMPORT_FOLDED[key]
        if key in _PROSE_FOLDED:
            return _PROSE_FOLDED[key]
        if key in _KNOWN_PIP:
            return key
    return top


def is_known(name: str) -> bool:
    """Whether ``name`` (any spelling) is a library of the curated map."""
    return canonical(name) in _KNOWN_PIP


def is_stdlib(module: str) -> bool:
    return module.split(".")[0] in _STDLIB


def import_names(pip_name: str) -> frozenset[str]:
    """The top-level modules a pip name installs (``opencv-python`` → ``{"cv2"}``)."""
    name = canonical(pip_name)
    found = {k.split(".")[0] for k, v in _IMPORT_TO_PIP.items() if v == name}
    if name.startswith(("opencv-", "opencv")):
        found.add("cv2")
    if name in ("pillow", "pillow-simd"):
        found.add("PIL")
    if not found:
        found.add(name.replace("-", "_"))
    return frozenset(found)


def same_library(a: str, b: str) -> bool:
    """Whether two names are one library (the same pip name, or the same import name:
    ``opencv-python`` and ``opencv-python-headless`` are not)."""
    return canonical(a) == canonical(b)


def domains(pip_name: str) -> tuple[str, ...]:
    """What a library is for (``image``, ``audio``, …), for matching lessons to a task."""
    name = canonical(pip_name)
    return tuple(d for d, libs in _DOMAINS.items() if name in libs)


def domains_of_text(words: set[str]) -> set[str]:
    """The domains a task's words speak of."""
    return {d for d, vocab in DOMAIN_WORDS.items() if words & set(vocab)}
