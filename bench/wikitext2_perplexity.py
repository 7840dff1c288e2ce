"""Perplexity of a language-model run on the WikiText-2 validation split.

    python bench/wikitext2_perplexity.py saved_models/general-en-base-e4 [--data ../shared/data]

The file is read as one document per article (" = Title = " headings), put
through the ULMFiT rules (``<unk>`` -> ``xxunk``, ``@-@`` markers joined) and
the run's vocabulary; prints the perplexity over all tokens (xxunk included,
so it is not comparable with word-level WikiText figures of other vocabularies)
and the share of unknown tokens. A backward run (``"backwards": true`` in its
config.json) reads the stream right to left.
"""

import argparse
import math
import os
import re

import numpy as np


def main():
    import keras

    from ulmfit_tf.data import LMStream
    from ulmfit_tf.tasks.text_classifier import language_model_and_vocab

    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    args = parser.parse_args()
    with open(os.path.join(args.data, "wikitext-2", "wiki.valid.tokens"), encoding="utf-8") as f:
        text = f.read()
    articles = [a for a in re.split(r"\n (?== [^=])", text) if a.strip()]
    model, vocab, backwards = language_model_and_vocab(args.run, arg_name="run")
    docs = vocab.encode_texts(articles)
    ids = np.concatenate(docs)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stream = LMStream(docs, batch_size=32, bptt=70, variable_bptt=False, shuffle=False,
                      backwards=backwards)
    loss = model.evaluate(stream.as_dataset(), verbose=0)
    print(f"{len(articles)} articles, {len(ids):,} tokens, xxunk {np.mean(ids == 0):.1%}, "
          f"{'backward' if backwards else 'forward'}: "
          f"perplexity {math.exp(loss):.1f}")


if __name__ == "__main__":
    main()
