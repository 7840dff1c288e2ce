"""The ULMFiT tokenization rules, shared by the Python and the in-graph tokenizer.

Both tokenizers apply the same steps in the same order, written once here so
they cannot drift apart:

1. ``fix_html``: fixed literal replacements (``<br />`` -> newline, a few HTML
   entities, WikiText's ``@-@`` markers, ``<unk>`` -> ``xxunk``, NUL -> space). fastai also
   calls ``html.unescape``; we keep to a fixed table because the in-graph twin
   can only do literal replacements.
2. ``xxrep``: a non-space character repeated 3 or more times becomes
   `` xxrep N c `` (fastai's ``replace_rep``).
3. Punctuation split: every character that is not a letter, number, combining
   mark or space becomes a token of its own. (fastai uses spaCy here, which no
   serving graph can run; this rule is the part of spaCy that matters for a
   word-level LM, and it is exactly reproducible with RE2.)
4. Whitespace split.
5. ``xxwrep``: a word repeated 3 or more times in a row becomes
   ``xxwrep N word`` (fastai's ``replace_wrep``; case-sensitive, as there).
6. Case: an all-caps token of 2+ characters gets ``xxup`` before it, a
   capitalised one ``xxmaj``; then every token is lower-cased.
7. ``xxbos`` starts every text.

With ``split_contractions`` (a setting of the vocabulary, off unless asked
for, so runs made before it keep their ids), step 3 keeps apostrophes, and a
word that ends in an English contraction is split as spaCy's English rules
split it: ``don't`` -> ``do n't``, ``it's`` -> ``it 's``, ``we'll`` -> ``we
'll`` (both the ASCII and the typographic apostrophe). Any other apostrophe
is then split off as punctuation. fastai's vocabularies, its published WT103
ones included, come from spaCy: without this rule our tokenizer never
produces ``n't``, ``'s``, ``'re`` and the like, 2.35% of fastai's running
tokens on IMDb (``bench/fastai_vocab_coverage.py``).

The patterns below use only syntax that means the same in Python's ``regex``
module and in RE2 (TensorFlow's ``tf.strings.regex_*`` ops): Unicode property
classes and literal characters, no look-arounds, no back-references.
"""

UNK, PAD, BOS, EOS, FLD = "xxunk", "xxpad", "xxbos", "xxeos", "xxfld"
TK_REP, TK_WREP, TK_UP, TK_MAJ = "xxrep", "xxwrep", "xxup", "xxmaj"
# fastai's order, so ids match fastai's vocabularies: xxunk=0, xxpad=1, xxbos=2.
SPECIAL_TOKENS = (UNK, PAD, BOS, EOS, FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ)
UNK_ID, PAD_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# (literal, replacement). Order matters: "&amp;" must go before the entities
# it could otherwise create.
HTML_REPLACEMENTS = (
    # NUL is a string terminator for some of TensorFlow's string ops, which
    # dropped it where Python kept it as a token: both now read it as a space.
    ("\x00", " "),
    ("<br />", "\n"),
    ("<br/>", "\n"),
    ("<br>", "\n"),
    ("\\n", "\n"),
    ("&#39;", "'"),
    ("&#146;", "'"),
    ("&#36;", "$"),
    ("&quot;", '"'),
    ("&nbsp;", " "),
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&amp;", "&"),
    ("<unk>", UNK),
    (" @-@ ", "-"),
    (" @.@ ", "."),
    (" @,@ ", ","),
)

# Whitespace: ASCII controls, NEL and every Unicode separator (Zs, Zl, Zp).
_WS_CHARS = "\t\n\x0b\x0c\r \x85"
WHITESPACE_CLASS = "[" + _WS_CHARS + r"\p{Z}]"
WHITESPACE_RUN = WHITESPACE_CLASS + "+"
NOT_WHITESPACE_CLASS = "[^" + _WS_CHARS + r"\p{Z}]"
WORD_CHARS = r"\p{L}\p{N}\p{M}"
PUNCTUATION = "([^" + WORD_CHARS + _WS_CHARS + r"\p{Z}])"
WORD = "[" + WORD_CHARS + "]+"
ALL_CAPS = r"\p{Lu}[^\p{Ll}]+"
CAPITALISED = r"\p{Lu}[^\p{Lu}]+"

# With split_contractions: punctuation is every non-word character but the
# apostrophes; a word splits into its stem and a contraction suffix, the
# stem's apostrophes split off, and the suffix stays on the stem's last word
# through the case rule (fastai marks "I'm" xxmaj and "DON'T" xxup, as whole
# words) and comes off after it.
APOSTROPHES = "'\u2019"
PUNCTUATION_BUT_APOSTROPHES = "([^" + WORD_CHARS + _WS_CHARS + r"\p{Z}" + APOSTROPHES + "])"
APOSTROPHE = "([" + APOSTROPHES + "])"
CONTRACTION_SUFFIX = "(?i:n[" + APOSTROPHES + "]t|[" + APOSTROPHES + "](?:s|re|ve|ll|m|d))"
CONTRACTION = "(.*)(" + CONTRACTION_SUFFIX + ")"
SUFFIX_AT_END = "(" + CONTRACTION_SUFFIX + ")$"

MIN_REPEAT = 3


def re2_escape(literal):
    """Escapes a literal for RE2 (and Python's regex): only metacharacters."""
    return "".join("\\" + c if c in r"\.^$|?*+()[]{}-" else c for c in literal)
