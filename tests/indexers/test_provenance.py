from __future__ import annotations

import textwrap

import pytest

from labmind.indexers.chunking import chunk_text
from labmind.indexers.fingerprint import fingerprints
from labmind.indexers.provenance import (
    DEFAULT_THRESHOLD,
    MIN_SHARED,
    Match,
    best_matches,
    similarity,
)


def code(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


TOP_WORDS = code(
    '''
    import re
    from collections import Counter


    def top_words(text, limit=10, min_length=3):
        """Most frequent words of a text, longest first on ties."""
        words = re.findall(r"[a-z']+", text.lower())
        counts = Counter(w for w in words if len(w) >= min_length)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], -len(item[0])))
        result = []
        for word, count in ranked[:limit]:
            result.append({"word": word, "count": count})
        return result
    '''
)

# The same function after a rename and a formatter: other names, other quotes, the long
# call wrapped with a trailing comma, a comment, blank lines.
TOP_WORDS_EDITED = code(
    """
    def frequent_terms(body, n=10, shortest=3):
        # count the words we care about
        tokens = re.findall(r'[a-z\\']+', body.lower())

        tally = Counter(t for t in tokens if len(t) >= shortest)
        order = sorted(
            tally.items(),
            key=lambda pair: (-pair[1], -len(pair[0])),
        )
        out = []
        for term, freq in order[:n]:
            out.append({'word': term, 'count': freq})

        return out
    """
)

# Same library (re), different logic.
SLUGIFY = code(
    '''
    import re


    def slugify(title, separator="-"):
        """A URL slug: lowercase ASCII words joined by the separator."""
        title = re.sub(r"[^\\w\\s-]", "", title.lower()).strip()
        title = re.sub(r"[\\s_-]+", separator, title)
        return title.strip(separator)
    '''
)

CHUNKED = code(
    """
    def chunked(items, size):
        if size <= 0:
            raise ValueError("size must be positive")
        batch = []
        for item in items:
            batch.append(item)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch
    """
)


def fps(text: str, language: str = "python") -> dict[int, int]:
    return fingerprints(text, language)


def links(text: str, blocks: dict[int, str], language: str = "python") -> list[int]:
    candidates = {block_id: fps(block, language) for block_id, block in blocks.items()}
    return [match.block_id for match in best_matches(fps(text, language), candidates)]


def test_a_renamed_and_reformatted_copy_matches() -> None:
    score = similarity(fps(TOP_WORDS_EDITED), fps(TOP_WORDS))
    assert score >= DEFAULT_THRESHOLD
    assert links(TOP_WORDS_EDITED, {1: TOP_WORDS, 2: SLUGIFY, 3: CHUNKED}) == [1]


def test_same_library_different_logic_does_not_link() -> None:
    assert similarity(fps(SLUGIFY), fps(TOP_WORDS)) < DEFAULT_THRESHOLD
    assert links(SLUGIFY, {1: TOP_WORDS, 3: CHUNKED}) == []


def test_import_os_alone_never_links() -> None:
    block = "import os\n\n\ndef here():\n    return os.getcwd()\n"
    assert links("import os\n", {1: "import os\n", 2: block, 3: TOP_WORDS}) == []
    assert best_matches(fps("import os\n"), {1: fps("import os\n")}, threshold=0.0) == []


def test_half_a_function_with_new_lines_matches() -> None:
    lines = TOP_WORDS.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("def ")))
    half = "\n".join(lines[start : start + 6])
    partial = half + "\n    logger.info('ranked %d words', len(ranked))\n    return ranked\n"
    assert links(partial, {1: TOP_WORDS, 2: SLUGIFY, 3: CHUNKED}) == [1]


def test_one_function_extracted_from_a_longer_block_matches() -> None:
    block = TOP_WORDS + "\n\n" + SLUGIFY + "\n\nprint(top_words(open('README.md').read()))\n"
    file = code(
        """
        import logging

        log = logging.getLogger(__name__)


        def setup():
            logging.basicConfig(level=logging.INFO)
        """
    ) + "\n\n" + SLUGIFY  # fmt: skip
    chunk = next(c for c in chunk_text(file, "python") if c.symbol == "slugify")
    assert links(chunk.text, {1: block, 2: CHUNKED}) == [1]


def test_a_merged_function_matches_both_sources() -> None:
    merged = code(
        '''
        def words_in_batches(text, size, limit=10, min_length=3):
            """Frequent words of a text, in batches."""
            words = re.findall(r"[a-z']+", text.lower())
            counts = Counter(w for w in words if len(w) >= min_length)
            ranked = sorted(counts.items(), key=lambda item: (-item[1], -len(item[0])))
            result = []
            for word, count in ranked[:limit]:
                result.append({"word": word, "count": count})
            if size <= 0:
                raise ValueError("size must be positive")
            batch = []
            for item in result:
                batch.append(item)
                if len(batch) == size:
                    yield batch
                    batch = []
            if batch:
                yield batch
        '''
    )
    assert sorted(links(merged, {1: TOP_WORDS, 2: SLUGIFY, 3: CHUNKED})) == [1, 3]


JS_BLOCK = code(
    """
    // Debounce: call fn once calls stop for `wait` ms.
    function debounce(fn, wait) {
      let timer = null;
      return function (...args) {
        clearTimeout(timer);
        timer = setTimeout(() => fn.apply(this, args), wait);
      };
    }
    """
)
JS_RENAMED = code(
    """
    const later = 1;
    function throttleCalls(callback, delayMs) {
      let handle = null
      return function (...rest) {
        clearTimeout(handle)
        handle = setTimeout(() => callback.apply(this, rest), delayMs)
      }
    }
    """
)
GO_BLOCK = code(
    """
    package stats

    import "sort"

    // Median of a slice of floats; the slice is not modified.
    func Median(values []float64) float64 {
        sorted := make([]float64, len(values))
        copy(sorted, values)
        sort.Float64s(sorted)
        n := len(sorted)
        if n == 0 {
            return 0
        }
        if n%2 == 1 {
            return sorted[n/2]
        }
        return (sorted[n/2-1] + sorted[n/2]) / 2
    }
    """
)
GO_RENAMED = code(
    """
    func middle(xs []float64) float64 {
    \tcp := make([]float64, len(xs))
    \tcopy(cp, xs)
    \tsort.Float64s(cp)
    \tcount := len(cp)
    \tif count == 0 {
    \t\treturn 0
    \t}
    \tif count%2 == 1 {
    \t\treturn cp[count/2]
    \t}
    \treturn (cp[count/2-1] + cp[count/2]) / 2
    }
    """
)


@pytest.mark.parametrize(
    ("language", "copy", "block", "other"),
    [
        ("javascript", JS_RENAMED, JS_BLOCK, GO_BLOCK),
        ("go", GO_RENAMED, GO_BLOCK, JS_BLOCK),
    ],
)
def test_renamed_copies_in_other_languages_match(
    language: str, copy: str, block: str, other: str
) -> None:
    assert similarity(fps(copy, language), fps(block, language)) >= 0.9
    assert links(copy, {1: block, 2: other}, language) == [1]


def test_similarity_takes_hashes_or_mappings_and_stays_in_range() -> None:
    mapping = fps(TOP_WORDS)
    assert similarity(mapping, mapping) == 1.0
    assert similarity(list(mapping), set(mapping)) == 1.0
    assert similarity(mapping, {}) == 0.0
    assert similarity([1, 2], [2, 3]) <= 1.0


def test_best_matches_are_sorted_and_respect_the_limits() -> None:
    code_fps = set(range(20))
    candidates = {
        1: set(range(10)),  # all of it inside: 1.0
        2: set(range(10, 40)),  # 10 shared of 20: 0.5
        3: set(range(MIN_SHARED - 1)) | {100, 101},  # too few shared
        4: set(range(15, 60)),  # 5 shared of 20: 0.25
    }
    matches = best_matches(code_fps, candidates)
    assert matches == [Match(1, 1.0, 10), Match(2, 0.5, 10)]
    assert [m.block_id for m in best_matches(code_fps, candidates, threshold=0.2)] == [1, 2, 4]
    lenient = best_matches(code_fps, candidates, threshold=0.0, min_shared=1)
    assert [m.block_id for m in lenient] == [1, 3, 2, 4]
