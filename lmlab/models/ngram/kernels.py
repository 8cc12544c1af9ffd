"""The n-gram chapter's inner loops, compiled: counting, hash tables, splitting text, the queries.

Each loop here walks millions of tokens one at a time with a decision at every step (does this
n-gram cross a sentence boundary? is this slot taken? was the longer n-gram stored?), which NumPy
can only express as many passes over temporary arrays. numba compiles them to machine code instead;
``cache=True`` keeps that code on disk, so only the first run on a machine pays the compilation
(about ten seconds for them all on a 2-core machine; loading them from the disk takes a third of a
second), and ``nogil`` lets other Python threads run meanwhile.

1. `pad_words`, `count_order`: the padded token stream, and the distinct k-grams in it, sorted, with
   their counts, by two counting sorts (by last word, then by prefix) rather than a comparison sort.
2. `fill_table`, `find_keys`: open-addressing hash tables over packed keys (`KeyIndex`).
3. `split_words`, `add_words`: text to word ids without a Python string per word: the UTF-8 bytes
   are cut at whitespace and each word is hashed and looked up in a table of the vocabulary's bytes.
4. `backoff_logprobs`, `kenlm_scores`: a back-off model's scores, the second with KenLM's own loop
   and float32 arithmetic.
5. `log10f`: the C library's single-precision log10, which lmplz writes.

A hash table here is open addressing with linear probing: a key sits in the first free slot from
its home slot on, wrapping around; tables are at most half full, so a probe ends after a slot or
two. A key's home is the top bits of a 64-bit hash: of the key itself (Fibonacci hashing, the key
times 2^64/phi), or, for KenLM's query, of the n-gram's words (`extend_hash`), as KenLM hashes them,
so that where an n-gram sits is known before any lookup. The stored key, the index of the n-gram's
prefix and its last word, decides a match, so a hash collision is never taken for a hit.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / phi, odd: multiplying by it permutes the 64-bit integers
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2  # as in counts.py


# 1. counting -------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def pad_words(words, lengths, pads):
    """`pads` ``<s>`` before and ``</s>`` after each sentence (`words` back to back, `lengths` long), all in
    one stream, and for every position where its sentence starts."""
    stream = np.empty(words.shape[0] + 2 * pads * lengths.shape[0], np.int64)
    starts = np.empty(stream.shape[0], np.int64)
    t, w = 0, 0
    for sentence in range(lengths.shape[0]):
        begin = t
        for j in range(lengths[sentence] + 2 * pads):
            if j < pads:
                stream[t] = BOS_ID
            elif j < pads + lengths[sentence]:
                stream[t] = words[w]
                w += 1
            else:
                stream[t] = EOS_ID
            starts[t] = begin
            t += 1
    return stream, starts


@njit(cache=True, nogil=True)
def count_order(ids, stream, starts, k, n_prefixes, vocab_size):
    """The k-grams of `stream`, given `ids`, the index of the (k-1)-gram ending at each position (-1: none).

    The k-gram ending at t is (the (k-1)-gram ending at t-1, the word at t), key ``prefix * |V| + word``,
    and exists if that prefix does and begins inside t's sentence (``starts[t]``). Sorting the k-grams by
    key is sorting by (prefix, word): a stable counting sort by word, then one by prefix, two linear
    passes where a comparison sort needs log n. Returns the sorted distinct keys, the count of each,
    each one's suffix (the (k-1)-gram ending at the same position), and the k-gram ending at each position.
    """
    n = stream.shape[0]
    ends = np.empty(n, np.int64)
    m = 0
    for t in range(1, n):
        if ids[t - 1] >= 0 and t - (k - 1) >= starts[t]:
            ends[m] = t
            m += 1
    by_word = np.zeros(vocab_size + 1, np.int64)  # by_word[w]: where the k-grams ending in w begin, once summed
    for j in range(m):
        by_word[stream[ends[j]] + 1] += 1
    for w in range(vocab_size):
        by_word[w + 1] += by_word[w]
    word_sorted = np.empty(m, np.int64)
    for j in range(m):
        w = stream[ends[j]]
        word_sorted[by_word[w]] = ends[j]
        by_word[w] += 1
    by_prefix = np.zeros(n_prefixes + 1, np.int64)
    for j in range(m):
        by_prefix[ids[ends[j] - 1] + 1] += 1
    for p in range(n_prefixes):
        by_prefix[p + 1] += by_prefix[p]
    ranked = ends  # reused: the positions in key order
    for j in range(m):
        t = word_sorted[j]
        p = ids[t - 1]
        ranked[by_prefix[p]] = t
        by_prefix[p] += 1
    keys = np.empty(m, np.int64)
    counts = np.empty(m, np.int64)
    suffix = np.empty(m, np.int64)
    found = np.full(n, -1, np.int64)
    g = -1
    for j in range(m):
        t = ranked[j]
        key = ids[t - 1] * vocab_size + stream[t]
        if g < 0 or key != keys[g]:
            g += 1
            keys[g], counts[g], suffix[g] = key, 0, ids[t]
        counts[g] += 1
        found[t] = g
    return keys[:g + 1].copy(), counts[:g + 1].copy(), suffix[:g + 1].copy(), found


# 2. hash tables ----------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def extend_hash(h, word):
    """The hash of an n-gram from its prefix's hash `h` (0 for the empty prefix) and its last word:
    SplitMix64's finaliser, which spreads every input bit over all 64 output bits."""
    x = h * _GOLDEN + np.uint64(word) + np.uint64(1)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True)
def extend_hashes(prefix_hashes, words):
    """`extend_hash` of each (prefix hash, word) pair."""
    out = np.empty(words.shape[0], np.uint64)
    for i in range(words.shape[0]):
        out[i] = extend_hash(prefix_hashes[i], words[i])
    return out


@njit(cache=True, nogil=True)
def _slot(h, bits):
    return np.int64(h >> np.uint64(64 - bits))


@njit(cache=True, nogil=True)
def fill_table(keys, hashes, payload, slots, bits):
    """Put each key into `slots` (``2^bits`` rows, all -1 before), from the home slot its hash gives: a row
    is (key, index << 32 | payload), the key's index and 32 bits of its own."""
    mask = (1 << bits) - 1
    for i in range(keys.shape[0]):
        s = _slot(hashes[i], bits)
        while slots[s, 0] >= 0:
            s = (s + 1) & mask
        slots[s, 0] = keys[i]
        slots[s, 1] = (i << 32) | np.int64(payload[i])


@njit(cache=True, nogil=True)
def _probe(slots, first_row, bits, row, key):
    """``index << 32 | payload`` stored with `key` in the table of ``2^bits`` rows from `first_row`, searched
    from row `row` (the key's home) on; -1 if absent."""
    mask = (1 << bits) - 1
    s = row - first_row
    while True:
        stored = slots[first_row + s, 0]
        if stored == key:
            return slots[first_row + s, 1]
        if stored < 0:
            return -1
        s = (s + 1) & mask


@njit(cache=True, nogil=True)
def find_keys(slots, bits, wanted, hashes):
    """The index of each wanted key (of the given hashes) in the table `slots`, or -1 where it is absent."""
    found = np.empty(wanted.shape[0], np.int64)
    for i in range(wanted.shape[0]):
        stored = _probe(slots, 0, bits, _slot(hashes[i], bits), wanted[i])
        found[i] = stored >> 32 if stored >= 0 else -1
    return found


# 3. text to word ids ------------------------------------------------------------------------------
#
# A word is hashed by FNV-1a over its UTF-8 bytes, then Fibonacci-hashed to a slot (FNV's own top bits
# barely depend on the last bytes of a short word).


@njit(cache=True, nogil=True)
def _word_hash(data, start, end):
    h = _FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(data[i])) * _FNV_PRIME
    return h


@njit(cache=True, nogil=True)
def _word_slot(h, bits):
    return np.int64((h * _GOLDEN) >> np.uint64(64 - bits))


@njit(cache=True, nogil=True)
def word_table(data, offsets, bits):
    """A hash table of the words whose UTF-8 bytes are ``data[offsets[i]:offsets[i+1]]``: slot -> word id."""
    slots = np.full(1 << bits, -1, np.int64)
    mask = (1 << bits) - 1
    for word in range(offsets.shape[0] - 1):
        s = _word_slot(_word_hash(data, offsets[word], offsets[word + 1]), bits)
        while slots[s] >= 0:
            s = (s + 1) & mask
        slots[s] = word
    return slots


@njit(cache=True, nogil=True)
def is_space(c):
    """Python's ``str.isspace`` (which ``str.split()`` splits at) for code point c."""
    if c < 128:
        return c == 32 or 9 <= c <= 13 or 28 <= c <= 31
    return (c == 0x85 or c == 0xA0 or c == 0x1680 or 0x2000 <= c <= 0x200A or c == 0x2028 or c == 0x2029
            or c == 0x202F or c == 0x205F or c == 0x3000)


@njit(cache=True, nogil=True)
def _code_point(data, i):
    """The code point starting at byte i of valid UTF-8 and its length in bytes."""
    b = np.int64(data[i])
    if b < 0x80:
        return b, 1
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (data[i + 1] & 0x3F), 2
    if b < 0xF0:
        return ((b & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F), 3
    return ((b & 0x07) << 18) | ((data[i + 1] & 0x3F) << 12) | ((data[i + 2] & 0x3F) << 6) | (data[i + 3] & 0x3F), 4


@njit(cache=True, nogil=True)
def _next_word(text, i, end):
    """Where the first word at or after byte i of `text` begins and ends, words being cut at whitespace as
    ``str.split()`` cuts them; (end, end) if there is none before byte `end`."""
    while i < end:
        c, size = _code_point(text, i)
        if not is_space(c):
            break
        i += size
    start = i
    while i < end:
        c, size = _code_point(text, i)
        if is_space(c):
            break
        i += size
    return start, i


@njit(cache=True, nogil=True)
def _same_bytes(a, a_start, a_end, b, b_start, b_end):
    if a_end - a_start != b_end - b_start:
        return False
    j = 0
    while j < a_end - a_start and a[a_start + j] == b[b_start + j]:
        j += 1
    return j == a_end - a_start


@njit(cache=True, nogil=True)
def split_words(text, text_offsets, words, word_offsets, slots, bits):
    """Split each text (bytes ``text[text_offsets[i]:text_offsets[i+1]]``) at whitespace, as ``str.split()``
    does, and look each piece up among the vocabulary's `words` (table `slots`, from `word_table`).

    Returns every piece's word id (<unk> where the vocabulary lacks it) back to back, and each text's count.
    """
    ids = np.empty(16 + (text_offsets[-1] - text_offsets[0]) // 4, np.int64)
    lengths = np.zeros(text_offsets.shape[0] - 1, np.int64)
    mask = (1 << bits) - 1
    n = 0
    for line in range(text_offsets.shape[0] - 1):
        i, end = text_offsets[line], text_offsets[line + 1]
        while True:
            start, i = _next_word(text, i, end)
            if start == end:
                break
            if n == ids.shape[0]:  # more words than a quarter of the bytes
                ids = _grown(ids)
            ids[n] = UNK_ID
            s = _word_slot(_word_hash(text, start, i), bits)
            while slots[s] >= 0:
                if _same_bytes(words, word_offsets[slots[s]], word_offsets[slots[s] + 1], text, start, i):
                    ids[n] = slots[s]
                    break
                s = (s + 1) & mask
            n += 1
            lengths[line] += 1
    return ids[:n].copy(), lengths


@njit(cache=True, nogil=True)
def add_words(text, text_offsets, words, word_offsets):
    """`split_words`, numbering each word the vocabulary lacks (`words`, as for `word_table`) from
    ``len(vocabulary)`` on, in order of first appearance. Returns the ids, each text's count, and the
    bytes of the new words, back to back, with where each begins."""
    known = word_offsets.shape[0] - 1
    bits = 1
    while 1 << bits <= 2 * (known + 4096):  # room for some thousand new words before the first doubling
        bits += 1
    slots, mask = word_table(words, word_offsets, bits), (1 << bits) - 1
    ids = np.empty(16 + (text_offsets[-1] - text_offsets[0]) // 4, np.int64)
    lengths = np.zeros(text_offsets.shape[0] - 1, np.int64)
    new_offsets, new_bytes = np.zeros(17, np.int64), np.empty(64, np.uint8)  # the new words, back to back
    new_hashes = np.empty(16, np.uint64)
    n, new = 0, 0
    for line in range(text_offsets.shape[0] - 1):
        i, end = text_offsets[line], text_offsets[line + 1]
        while True:
            start, i = _next_word(text, i, end)
            if start == end:
                break
            if n == ids.shape[0]:  # more words than a quarter of the bytes
                ids = _grown(ids)
            h = _word_hash(text, start, i)
            s = _word_slot(h, bits)
            while True:
                word = slots[s]
                if word < 0:  # not seen before: the next id
                    word = known + new
                    slots[s] = word
                    if new == new_hashes.shape[0]:
                        new_hashes, new_offsets = _grown(new_hashes), _grown(new_offsets)
                    while new_offsets[new] + i - start > new_bytes.shape[0]:
                        new_bytes = _grown(new_bytes)
                    new_hashes[new], new_offsets[new + 1] = h, new_offsets[new] + i - start
                    new_bytes[new_offsets[new]:new_offsets[new + 1]] = text[start:i]
                    new += 1
                    if 2 * (known + new) >= 1 << bits:  # more than half full: twice the slots
                        bits += 1
                        slots, mask = word_table(words, word_offsets, bits), (1 << bits) - 1
                        for j in range(new):
                            r = _word_slot(new_hashes[j], bits)
                            while slots[r] >= 0:
                                r = (r + 1) & mask
                            slots[r] = known + j
                    break
                if word < known:
                    same = _same_bytes(words, word_offsets[word], word_offsets[word + 1], text, start, i)
                else:
                    same = _same_bytes(new_bytes, new_offsets[word - known], new_offsets[word - known + 1],
                                       text, start, i)
                if same:
                    break
                s = (s + 1) & mask
            ids[n] = word
            n += 1
            lengths[line] += 1
    return ids[:n].copy(), lengths, new_bytes[:new_offsets[new]].copy(), new_offsets[:new + 1].copy()


@njit(cache=True, nogil=True)
def _grown(values):
    """`values` in an array twice as long (its second half to be written over)."""
    return np.concatenate((values, values))


# 4. queries --------------------------------------------------------------------------------------
#
# Both take the text as a stream of padded sentences back to back, each from ``starts[t]``, and the
# model as flat arrays, orders indexed by k: order k's back-off weights start at
# ``backoff[backoff_offset[k]]`` (and its probabilities at ``prob[prob_offset[k]]``).
#
# `backoff_logprobs` walks the sorted keys as a trie, order by order: the k-grams ending at every
# position, then the (k+1)-grams, so that no lookup waits for another and the processor runs many at
# once. Order k's keys start at ``keys[key_offset[k]]``; the children of (k-1)-gram p (the k-grams it
# is the prefix of) are its keys ``children[child_offset[k] + p]`` to ``children[child_offset[k] + p + 1]``.


@njit(cache=True, nogil=True)
def _child(keys, lo, hi, key):
    """The position of `key` among the sorted ``keys[lo:hi]``, or -1: binary search."""
    n = hi - lo
    while n > 1:
        half = n >> 1
        lo = lo + half if keys[lo + half] <= key else lo
        n -= half
    return lo if n == 1 and keys[lo] == key else -1


@njit(cache=True, nogil=True)
def backoff_logprobs(stream, starts, order, vocab_size, keys, key_offset, children, child_offset, prob, prob_offset,
                     backoff, backoff_offset, missing_backoff):
    """ln p of the word at every position of `stream`.

    ``found[k, t]`` is the index of the k-gram ending at t (-1: not stored): the child of the (k-1)-gram
    ending at t - 1 by the word at t. The longest one found gives p; each longer k-gram that fits in the
    sentence but was not stored first adds the log back-off weight of its context (`missing_backoff` if
    the context is not stored either), longest first.
    """
    n = stream.shape[0]
    found = np.full((order + 1, n), -1, np.int64)
    found[1] = stream
    for k in range(2, order + 1):
        first, family = key_offset[k], child_offset[k]
        for t in range(1, n):
            prefix = found[k - 1, t - 1]
            if prefix >= 0 and t - (k - 1) >= starts[t]:
                i = _child(keys, first + children[family + prefix], first + children[family + prefix + 1],
                           prefix * vocab_size + stream[t])
                found[k, t] = i - first if i >= 0 else -1
    logp = np.empty(n)
    for t in range(n):
        total = 0.0
        for k in range(order, 0, -1):
            if found[k, t] >= 0:
                total += math.log(prob[prob_offset[k] + found[k, t]])
                break
            if t - (k - 1) >= starts[t]:  # the k-gram fits in the sentence: its context was dropped
                context = found[k - 1, t - 1]
                total += math.log(backoff[backoff_offset[k - 1] + context] if context >= 0 else missing_backoff)
        logp[t] = total
    return logp


# `kenlm_scores` is KenLM's own loop, word after word, each word's state (the n-gram it matched) the
# next one's context, so it probes hash tables instead (`OrderIndex`): order k's table is
# ``2^bits[k]`` rows of `slots` from row ``first_row[k]``, its keys placed by `extend_hash` of their
# words, each with its float32 log10 p as the payload, so that finding an n-gram reads its probability
# too. A lookup misses the cache; waiting for each miss in turn would take most of the time. But where
# the n-grams ending at a position sit in the tables depends on the words alone, so while the loop
# works on position t it asks the memory for the slots of position t + AHEAD (`_prefetch`), which are
# then at hand when their turn comes. The positions are hashed a block at a time, ahead of the loop.

AHEAD = 8  # positions
RING = 1024  # positions whose home rows are kept; a power of 2


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask for ``array[index]`` (a 2-D array's row) to be brought into the cache, without waiting for it."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        first_of_row = [args[1]] + [context.get_constant(types.intp, 0)] * (array_type.ndim - 1)
        pointer = cgutils.get_item_pointer(context, builder, array_type,
                                           context.make_array(array_type)(context, builder, args[0]), first_of_row)
        i32, byte_pointer = ir.IntType(32), ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0")
        # read, keep in all cache levels, data
        builder.call(prefetch, [builder.bitcast(pointer, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@njit(cache=True, nogil=True)
def _hash_ahead(stream, starts, order, first_row, bits, hashes, rows, begin, end):
    """Write ``rows[u % RING, k]``, the home row of the k-gram ending at position u (-1 where it would cross
    the sentence start), for u from `begin` to `end`; `hashes` holds the hashes of the n-grams ending at
    position ``begin - 1`` and is left holding those ending at ``end - 1``. Returns `end`.

    `kenlm_scores` calls it once a block and prefetches each row AHEAD positions before its lookup in its
    own loop (a helper called there per position measured slower than the prefetch gains)."""
    for u in range(begin, end):
        word = stream[u]
        fits = min(order, u - starts[u] + 1)
        ring = u & (RING - 1)
        for k in range(order, 1, -1):  # longest first, so that hashes[k - 1] is still position u - 1's
            rows[ring, k] = -1
            if k <= fits:
                hashes[k] = extend_hash(hashes[k - 1], word)
                rows[ring, k] = first_row[k] + _slot(hashes[k], bits[k])
        hashes[1] = extend_hash(np.uint64(0), word)
    return end


@njit(cache=True, nogil=True)
def kenlm_scores(stream, starts, order, vocab_size, slots, first_row, bits, log_prob, log_backoff, backoff_offset):
    """log10 p of each word and ``</s>`` of each ``<s> w1 .. wm </s>`` of `stream`, as KenLM scores them.

    The tables hold float32 log10 values, as an ARPA file does (`log_prob`: the unigrams'; the longer
    n-grams' are in the slots). KenLM's state after a word is the longest n-gram found ending there (at
    most n-1 words): ``context[m]``, the index of its last m words, for m up to `known`. The next word's
    match grows leftwards one word at a time from the unigram and stops at the first n-gram the model
    lacks; its score is that n-gram's log10 p plus the back-off of each longer context it had to drop,
    added shortest first, every sum rounded to float32.
    Returns (the score of every position but the ``<s>``, which are <unk>, each sentence's total).
    """
    n = stream.shape[0]
    sentences = 0
    for t in range(n):
        sentences += starts[t] == t
    scores = np.empty(n - sentences, np.float32)
    oov = np.zeros(n - sentences, np.bool_)
    totals = np.zeros(sentences, np.float32)
    context, found = np.empty(order + 1, np.int64), np.empty(order + 1, np.int64)
    hashes, rows, hashed = np.zeros(order + 1, np.uint64), np.empty((RING, order + 1), np.int64), 0
    payload = np.empty(1, np.uint32)
    as_float = payload.view(np.float32)  # the payload's 32 bits read as the float32 they are
    known, scored, sentence, total = 0, 0, -1, np.float32(0.0)
    for t in range(n):
        if hashed <= min(t + AHEAD, n - 1):
            hashed = _hash_ahead(stream, starts, order, first_row, bits, hashes, rows, hashed, min(t + RING, n))
        if t + AHEAD < n:
            for k in range(2, order + 1):
                if rows[(t + AHEAD) & (RING - 1), k] >= 0:
                    _prefetch(slots, rows[(t + AHEAD) & (RING - 1), k])
        ring, word = t & (RING - 1), stream[t]
        if starts[t] == t:  # <s>: given, not scored; the state after it
            if sentence >= 0:
                totals[sentence] = total
            sentence, total = sentence + 1, np.float32(0.0)
            context[1], known = word, min(1, order - 1)
            continue
        found[1] = word
        length = 1
        while length <= known:
            stored = _probe(slots, first_row[length + 1], bits[length + 1], rows[ring, length + 1],
                            context[length] * vocab_size + word)
            if stored < 0:
                break
            length += 1
            found[length] = stored >> 32
            payload[0] = np.uint32(stored & 0xFFFFFFFF)
        score = log_prob[word] if length == 1 else as_float[0]
        for m in range(length, known + 1):
            score += log_backoff[backoff_offset[m] + context[m]]
        scores[scored], oov[scored] = score, word == UNK_ID
        total += score
        scored += 1
        known = min(length, order - 1)
        for m in range(1, known + 1):  # a loop: a slice would be an array view, reference-counted
            context[m] = found[m]
            _prefetch(log_backoff, backoff_offset[m] + found[m])  # the next word may back off from it
    if sentence >= 0:
        totals[sentence] = total
    return scores, oov, totals


# 5. log10f ----------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def log10f(values):
    """log10 of each float32, by the C library's log10f: numba calls it for float32 arguments.

    One call per value, not vectorised: a vectorised log10 (NumPy's on AVX-512 CPUs, or Intel's SVML,
    which numba uses where it is installed) rounds differently from the C library in the last bit.
    """
    out = np.empty(values.shape[0], np.float32)
    for i in range(values.shape[0]):
        out[i] = math.log10(values[i])
    return out


@njit(cache=True, nogil=True)
def log10f_one(value):
    """The C library's log10f of one float32: no loop, so nothing to vectorise."""
    return math.log10(value)
