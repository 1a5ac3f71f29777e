"""The prompt lab: synthesize candidate prompts with the teacher, score them, promote.

One job runs at a time (later ones wait, ``queued``); each is a row of ``lab_jobs`` whose
progress is announced with ``job`` events. A round goes:

1. **References.** The teacher answers every case once (the frame, or the text as the scene), in
   the contract; the answer is cached on the case and is what the embedding similarity compares
   the student's answers with. An accepted example's reference is the teacher's verdict.
2. **The active prompt** is scored on the train cases (for the teacher's OPRO context) and the
   holdout cases (the bar for the gate) whenever the suite changed since it was last scored.
3. **Synthesis** (synthesize jobs only): the teacher writes N candidates from the meta-prompt
   (`vision_tutor_teacher.lab.synthesis`); blank, contract-dropping and near-duplicate ones are
   rejected, the rest registered as candidates whose parent is the active prompt.
4. **Screening**: with more candidates than finalists, each answers a stratified minibatch of
   train cases; the better half (at least the finalists' number) goes on.
5. **Train**: the survivors answer every train case; the best `FINALISTS` by train score are the
   finalists.
6. **Holdout**: only the finalists answer the holdout cases.
7. **Gate**: the finalist with the best holdout score is promoted if it passes
   `registry.gate`; otherwise everything stays a candidate. The round is recorded for the
   fine-tuning readiness rule.

A student timeout or error on one case scores that case as a failure and the run goes on; a
student that cannot be reached at all, or a teacher whose synthesis answer holds no prompt, fails
the job with a message that says so.
"""
