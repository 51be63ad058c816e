"""Numbers the paper prints (7B–13B models), for the report to show beside ours. Tables 1, 2 and 6 are
figures or images in the paper text we have, so only their claims in the prose are quoted."""

# Table 5: mean Coverage-N over each task's prompts (Baseline, Ours (OOD)).
TABLE5_COVERAGE = {
    "Gemma": {
        "BABYNAMES": (170.0, 346.0),
        "COUNTRIES": (23.3, 53.3),
        "FRUITS": (20.5, 62.0),
        "DAYS AND DATES": (18.5, 23.0),
        "NUMBERS": (16.0, 31.0),
        "OCCUPATIONS": (51.7, 148.0),
    },
    "Llama": {
        "BABYNAMES": (129.0, 426.0),
        "COUNTRIES": (17.8, 43.0),
        "FRUITS": (45.0, 60.5),
        "DAYS AND DATES": (14.3, 22.5),
        "NUMBERS": (10.0, 31.9),
        "OCCUPATIONS": (192.7, 313.3),
    },
    "Mistral": {
        "BABYNAMES": (225.0, 493.0),
        "COUNTRIES": (44.0, 71.5),
        "FRUITS": (46.0, 64.0),
        "DAYS AND DATES": (22.7, 22.5),
        "NUMBERS": (29.3, 32.0),
        "OCCUPATIONS": (180.3, 305.0),
    },
}

# Tables 7–8: Llama-2-13B biographies (1000 samples), attribute -> model -> (coverage, entropy in nats).
TABLE78 = {
    "first_name": {"Base": (158, 3.23), "Tuned-ID": (637, 5.58), "Tuned-OOD": (375, 6.18)},
    "last_name": {"Base": (288, 4.30), "Tuned-ID": (845, 5.96), "Tuned-OOD": (557, 6.63)},
    "birth_year": {"Base": (26, 1.10), "Tuned-ID": (67, 4.22), "Tuned-OOD": (89, 3.15)},
    "birth_place": {"Base": (98, 2.65), "Tuned-ID": (305, 5.98), "Tuned-OOD": (533, 5.08)},
    "profession": {"Base": (178, 3.81), "Tuned-ID": (276, 4.33), "Tuned-OOD": (198, 4.61)},
}

CLAIMS = {
    "table1": "Base models put over 60% on one number (Gemma and Llama-2: 5; Mistral: 25% on 8) and none "
    "produce all ten numbers in 1000 samples; tuned models reach full coverage and near-perfect "
    "entropy on RNG, and over twice the baseline coverage on BABYNAMES.",
    "fig1": "Untuned Gemma puts 40% on 'Anya'; Llama-2 says 'Aurora' ~100× more often than the natural "
    "distribution; both put over 60% on 5 for RNG.",
    "fig2": "The model tuned on 1–10 and 1–100 is near uniform on unseen formats and ranges (e.g. 1–45), "
    "and has substantially higher entropy than the base model on shifted ranges (e.g. 154–204).",
    "leave-one-out": "Tuning raises entropy over the baseline on every task, held out (OOD) or not (ID); "
    "the ID–OOD gap is largest for COUNTRIES and FRUITS.",
    "biographies": "Tuned-OOD: ~4× the unique first names, 3× the birth places, 1.5× the professions of "
    "the base model; the base Llama-2 writes 'Evelyn' 284 times and 966 women in 1000 "
    "biographies; Tuned-ID balances gender and birth year.",
    "temperature": "Footnote 6: untuned models must be sampled at a temperature above 10 to match the "
    "entropy of the tuned models of Section 4.2.",
    "utility": "Appendix C.4: MT-Bench scores of baseline and six-task-tuned models differ minimally.",
    "compare": "Footnote 6 compares tuning with temperature only; this compares it with min-p, top-p, a "
    "system prompt and verbalized sampling too (not in the paper).",
    "tradeoff": "Not in the paper. Section 5 and Appendix C.4 together claim both at once: diversity that "
    "transfers to held-out tasks, and general ability unchanged.",
}
