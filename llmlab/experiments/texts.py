"""Text written for the experiments, so that every quick version runs without any data set.

- `SENSES`: three ambiguous English words, each in 8 sentences of each of two senses
  (static-vs-contextual);
- `PARAPHRASES`: pairs that mean the same and share no content word; `GRADED_PAIRS`: sentence
  pairs with a hand-assigned similarity on the STS-B scale 0-5 (bow-vs-embeddings);
- `english_text`: all of it as one text, the small corpus the quick versions train word2vec and
  a BPE tokenizer on.
"""

# word -> {sense: sentences}; every sentence holds the word exactly once, in this form
SENSES: dict[str, dict[str, list[str]]] = {
    "bank": {
        "river": [
            "We had a picnic on the grassy bank of the river.",
            "The canoe drifted slowly toward the muddy bank.",
            "A heron stood motionless on the far bank, waiting for fish.",
            "After the storm the stream rose and flooded over its bank.",
            "Children rolled down the steep bank and splashed into the lake.",
            "He tied the boat to a willow growing on the bank.",
            "Wildflowers covered the bank where the creek bends.",
            "The fisherman sat on the bank all afternoon without a single bite.",
        ],
        "money": [
            "She deposited her paycheck at the bank on Friday morning.",
            "The bank approved our loan for the new house.",
            "I need to call the bank about a strange charge on my card.",
            "The central bank raised interest rates again this quarter.",
            "He opened a savings account at a small local bank.",
            "Robbers broke into the bank and emptied the vault over the weekend.",
            "The bank charges a fee for every international transfer.",
            "My bank closes early on public holidays.",
        ],
    },
    "bat": {
        "animal": [
            "A bat flew out of the cave as the sun went down.",
            "The little brown bat eats thousands of mosquitoes every night.",
            "We heard a bat squeaking in the attic above the bedroom.",
            "The vampire bat feeds on the blood of sleeping cattle.",
            "At dusk a bat swooped low over the pond, catching insects.",
            "The biologist fitted a tiny radio tag to every bat in the colony.",
            "A fruit bat was hanging upside down from the branch.",
            "The injured bat was taken to a wildlife rescue centre to heal its wing.",
        ],
        "sport": [
            "He swung the bat and sent the ball over the fence.",
            "She bought a new cricket bat made of willow.",
            "The batter dropped his bat and sprinted to first base.",
            "Grip the bat firmly with both hands before the pitch.",
            "A wooden bat cracked in half during the game.",
            "The coach handed the rookie a lighter aluminium bat.",
            "He tapped the bat against his shoe before stepping up to the plate.",
            "The signed bat from the championship team sold for a fortune.",
        ],
    },
    "bark": {
        "dog": [
            "The dog began to bark when the mailman reached the gate.",
            "Our puppy has a surprisingly loud bark for such a small animal.",
            "I heard a sharp bark from the neighbour's yard at midnight.",
            "The guard dog gave a deep bark and the stranger backed away.",
            "Every time the doorbell rings, the terrier lets out a bark.",
            "A fox's bark sounds almost like a scream in the night.",
            "Teach your dog to bark only when someone is at the door.",
            "With one friendly bark the retriever welcomed us home.",
        ],
        "tree": [
            "The bark of the old oak was rough and covered in moss.",
            "Deer strip the bark from young trees during winter.",
            "Birch bark peels off in thin white sheets.",
            "Beetles tunnel under the bark and slowly kill the pine.",
            "Cinnamon is made from the dried inner bark of a tree.",
            "She pressed her hand against the cool bark of the maple.",
            "The carver removed the bark before shaping the branch into a walking stick.",
            "Thick bark protects the redwood from forest fires.",
        ],
    },
}

# same meaning, no word in common (the second pair shares its final full stop)
PARAPHRASES: list[tuple[str, str]] = [
    ("The film was fantastic.", "I really loved that movie!"),
    ("The physician prescribed medication.", "A doctor gave her some pills."),
    ("How old are you?", "Tell me your age."),
]

# (sentence 1, sentence 2, similarity 0-5 assigned by hand in the spirit of the STS-B guidelines)
GRADED_PAIRS: list[tuple[str, str, float]] = [
    ("A man is playing a guitar.", "A man plays the guitar.", 5.0),
    ("A woman is slicing an onion.", "Someone is cutting an onion.", 4.4),
    ("The cat sleeps on the sofa.", "A cat is napping on the couch.", 4.0),
    ("Two dogs are running in a field.", "A dog runs across the grass.", 3.4),
    ("The president gave a speech about the economy.", "The prime minister spoke about jobs.", 2.8),
    ("A child is riding a horse.", "A child is feeding a horse.", 2.2),
    ("A man is playing a guitar.", "A man is playing football.", 1.6),
    ("The train leaves at noon.", "The bus arrives in the morning.", 1.2),
    ("She is reading a book in the library.", "He is cooking pasta in the kitchen.", 0.6),
    ("A plane is taking off.", "A woman is peeling a potato.", 0.2),
    ("The stock market fell sharply today.", "My grandmother knits warm socks.", 0.0),
]


def english_text() -> str:
    """Every English sentence above, one paragraph per sense and per pair list."""
    paragraphs = [" ".join(s) for senses in SENSES.values() for s in senses.values()]
    paragraphs.append(" ".join(a + " " + b for a, b in PARAPHRASES))
    paragraphs.append(" ".join(a + " " + b for a, b, _ in GRADED_PAIRS))
    return "\n\n".join(paragraphs) + "\n"
