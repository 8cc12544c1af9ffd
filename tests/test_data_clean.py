"""Cleaning: normalization keeps Chinese, invisible noise goes, filters drop with a reason."""

import unicodedata

import pytest

from lmlab.config import load_config
from lmlab.data import CleanConfig, DataConfig, clean_text, clean_text_with_reason
from lmlab.errors import LmlabError

DEFAULT = CleanConfig()


def test_chinese_english_emoji_document_with_defaults():
    raw = "Ｈｅｌｌｏ，世界！\u200b I love 🍜  面条\t\tand\u00a0tea.\r\n\r\n\r\n\r\n  第二段：好吃😀 \x00"
    assert clean_text(raw, DEFAULT) == "Hello,世界! I love :steaming_bowl: 面条 and tea.\n\n第二段:好吃:grinning_face:"


def test_nfkc_leaves_chinese_characters_unchanged():
    chinese = "自然语言处理是计算机科学领域与人工智能领域中的一个重要方向。鲁迅《呐喊》"
    assert clean_text(chinese, DEFAULT) == chinese
    assert unicodedata.normalize("NFKC", chinese) == chinese


def test_nfc_keeps_full_width_forms_and_none_keeps_compatibility_ligatures():
    assert clean_text("ＡＢＣ１２３", CleanConfig(normalize="NFC")) == "ＡＢＣ１２３"
    assert clean_text("ﬁne", CleanConfig(normalize="none")) == "ﬁne"
    assert clean_text("ﬁne", DEFAULT) == "fine"


def test_emoji_sequences_become_one_name_before_joiners_are_stripped():
    family = "👨\u200d👩\u200d👧"
    assert clean_text(family, DEFAULT) == ":family_man_woman_girl:"
    without = clean_text(family, CleanConfig(emoji_to_text=False))
    assert without == "👨👩👧"  # the zero-width joiners (format characters) are gone


def test_emoji_outside_the_supplementary_planes_are_converted():
    assert clean_text("晴☀ 1️⃣ ©", DEFAULT) == "晴:sun: :keycap_1: :copyright:"


def test_strip_control_keeps_newlines_and_tabs():
    cfg = CleanConfig(collapse_whitespace=False)
    assert clean_text("a\x00b\x1bc\u200bd\ufeffe\u202ef\tg\nh\ri", cfg) == "abcdef\tg\nh\ni"
    assert clean_text("a\x00b", CleanConfig(strip_control=False, collapse_whitespace=False)) == "a\x00b"


def test_collapse_whitespace():
    assert clean_text("  a  \t b \n\n\n\n c  \n d\u3000e  ", DEFAULT) == "a b\n\nc\nd e"
    assert clean_text("a  b", CleanConfig(collapse_whitespace=False)) == "a  b"


@pytest.mark.parametrize(
    ("text", "cfg", "reason"),
    [
        (" \u200b\n\t ", DEFAULT, "empty"),
        ("短", CleanConfig(min_chars=2), "too_short"),
        ("a" * 11, CleanConfig(max_chars=10), "too_long"),
        ("| 12 | 34 | 56 |", CleanConfig(min_alpha_share=0.5), "low_alpha"),
        ("Buy cheap PILLS now", CleanConfig(blocklist=["pills"]), "blocklist"),
        ("欢迎来到网上赌博网站", CleanConfig(blocklist=["赌博"]), "blocklist"),
        ("call 555-0199 today", CleanConfig(blocklist=[r"re:\d{3}-\d{4}"]), "blocklist"),
    ],
)
def test_filters_say_why_a_document_was_dropped(text, cfg, reason):
    assert clean_text_with_reason(text, cfg) == (None, reason)


def test_filters_keep_what_they_should():
    assert clean_text_with_reason("中文文本", CleanConfig(min_alpha_share=0.9)) == ("中文文本", None)
    assert clean_text("a classic passage", CleanConfig(blocklist=["ass"])) == "a classic passage"
    assert clean_text("ab", CleanConfig(min_chars=2, max_chars=2)) == "ab"


def test_bad_settings_are_errors_naming_the_key():
    with pytest.raises(LmlabError, match=r"clean\.blocklist.*not a valid regular expression"):
        load_config(DataConfig, overrides=["clean.blocklist=['re:(unclosed']"])
    with pytest.raises(LmlabError, match=r"clean\.normalize"):
        load_config(DataConfig, overrides=["clean.normalize=NFD"])
    with pytest.raises(LmlabError, match=r"unknown key 'clean\.lowercase'"):
        load_config(DataConfig, overrides=["clean.lowercase=true"])
    cfg = load_config(DataConfig, overrides=["clean.min_chars=20", "dedup=exact"])
    assert cfg.clean.min_chars == 20 and cfg.dedup == "exact"
