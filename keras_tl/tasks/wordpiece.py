"""keras_hub's BERT WordPiece tokenization in pure Python (standard library
only): the reference an exported text model's ONNX inputs are built with.

A text export copies this file into `tokenizer/` beside `vocab.txt` and
`tokenizer_config.json`, so the ONNX model can be fed without keras_tl,
keras_hub or TensorFlow:

    python tokenizer/wordpiece.py tokenizer/ "Tasty and fresh!"

The rules, those of `keras_hub.tokenizers.WordPieceTokenizer` and the BERT
preprocessor's packer (the tests compare the ids with keras_hub's):

1. `strip_accents`: NFD, then marks (category Mn) removed.
2. Split on ASCII whitespace and control/format characters (Cc, Cf), which
   are dropped, and on punctuation (ASCII non-alphanumerics and Unicode
   category P) and CJK ideographs, which are kept as words.
3. `do_lower_case`: each word mapped with Unicode NFKC_Casefold.
4. WordPiece: greedy longest match first; pieces after the first carry
   `##`; a word longer than 100 UTF-8 bytes or with no match is `[UNK]`.
5. `[CLS]` + the first `model_max_length - 2` pieces + `[SEP]`, then
   `[PAD]` up to `model_max_length`; `padding_mask` is 1 on real tokens,
   `segment_ids` 0.
"""

import json
import os
import sys
import unicodedata

MAX_BYTES_PER_WORD = 100
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
# Unicode default-ignorable code points, which NFKC_Casefold removes
_IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
              (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
              (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
              (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
              (0xE0000, 0xE0FFF))


def _in(ranges, char):
    return any(low <= ord(char) <= high for low, high in ranges)


def _casefold(word):
    """Unicode NFKC_Casefold, as `tf_text.case_fold_utf8`."""
    word = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", word).casefold())
    return "".join(c for c in word if not _in(_IGNORABLE, c))


def split_words(text, lowercase=True, strip_accents=False, split_on_cjk=True):
    """Rules 1-3: the words of `text`.

    Example:
    >>> split_words("Crème brûlée, 2x!")
    ['crème', 'brûlée', ',', '2x', '!']
    """
    if strip_accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text)
                       if unicodedata.category(c) != "Mn")
    words, current = [], ""
    for char in text:
        category = unicodedata.category(char)
        if char in " \t\n\r\f" or category in ("Cc", "Cf"):
            words.append(current)
            current = ""
        elif (char.isascii() and not char.isalnum()) or category.startswith("P") or (
                split_on_cjk and _in(_CJK, char)):
            words += [current, char]
            current = ""
        else:
            current += char
    words = [word for word in words + [current] if word]
    return [_casefold(word) for word in words] if lowercase else words


class WordPieceTokenizer:
    """Rules 4-5 on a vocabulary (`vocab.txt`: one token per line, id =
    line number) with the settings of `tokenizer_config.json`.

    Example:
    >>> tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "tea", "##s"],
    ...                                model_max_length=6)
    >>> tokenizer.encode(["Teas", "coffee"])["token_ids"]
    [[2, 4, 5, 3, 0, 0], [2, 1, 3, 0, 0, 0]]
    """

    def __init__(self, vocabulary, do_lower_case=True, strip_accents=False,
                 tokenize_chinese_chars=True, unk_token="[UNK]", cls_token="[CLS]",
                 sep_token="[SEP]", pad_token="[PAD]", model_max_length=128,
                 model_input_names=("token_ids", "segment_ids", "padding_mask"), **unused):
        self.ids = {token: i for i, token in enumerate(vocabulary)}
        self.lowercase, self.strip_accents = bool(do_lower_case), bool(strip_accents)
        self.split_on_cjk = bool(tokenize_chinese_chars)
        self.unk, self.cls, self.sep, self.pad = (self.ids[t] for t in (
            unk_token, cls_token, sep_token, pad_token))
        self.length, self.input_names = int(model_max_length), list(model_input_names)

    def pieces(self, word):
        """Rule 4: the ids of one word's pieces.

        Example:
        >>> WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "tea", "##s"]).pieces("teas")
        [4, 5]
        """
        if len(word.encode("utf-8")) > MAX_BYTES_PER_WORD:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    ids.append(self.ids[piece])
                    start = end
                    break
            else:
                return [self.unk]
        return ids

    def encode(self, texts):
        """Rule 5: `{input_name: [[int] * model_max_length] * len(texts)}`.

        Example:
        >>> tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "tea"],
        ...                                model_max_length=6)
        >>> tokenizer.encode(["tea"])["padding_mask"]
        [[1, 1, 1, 0, 0, 0]]
        """
        rows = []
        for text in texts:
            ids = [i for word in split_words(text, self.lowercase, self.strip_accents,
                                             self.split_on_cjk) for i in self.pieces(word)]
            ids = [self.cls] + ids[:self.length - 2] + [self.sep]
            rows.append(ids + [self.pad] * (self.length - len(ids)))
        arrays = {"token_ids": rows, "segment_ids": [[0] * self.length for _ in rows],
                  "padding_mask": [[int(i != self.pad) for i in row] for row in rows]}
        return {name: arrays[name] for name in self.input_names}


def load_tokenizer(folder):
    """The tokenizer of an export's `tokenizer/` folder.

    Example:
    >>> load_tokenizer("saved_models/reviews/1/tokenizer").length  # doctest: +SKIP
    128
    """
    with open(os.path.join(folder, "vocab.txt"), encoding="utf-8") as f:
        vocabulary = f.read().split("\n")[:-1]
    with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
        return WordPieceTokenizer(vocabulary, **json.load(f))


if __name__ == "__main__":  # python wordpiece.py TOKENIZER_FOLDER TEXT...
    print(json.dumps(load_tokenizer(sys.argv[1]).encode(sys.argv[2:])))
