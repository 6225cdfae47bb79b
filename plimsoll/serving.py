"""The MLflow pyfunc model of a candidate: encoder + index snapshot + answer templates."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc

ARTIFACTS = ("encoder", "index_snapshot", "answer_template", "abstain_template")


class DocsAssistantModel(mlflow.pyfunc.PythonModel):
    """Answers questions; every answer carries the model, template and snapshot it came from."""

    def load_context(self, context) -> None:
        """Open the bundled encoder, snapshot and templates."""
        from plimsoll.answerer import Answerer
        from plimsoll.encoder import Encoder, EncoderDirectory
        from plimsoll.index_snapshot import IndexSnapshot
        from plimsoll.prompts import load_template

        config = context.model_config or {}
        artifacts = context.artifacts
        self.answerer = Answerer(
            Encoder(EncoderDirectory.open(Path(artifacts["encoder"]))),
            IndexSnapshot(Path(artifacts["index_snapshot"])),
            load_template(Path(artifacts["answer_template"])),
            load_template(Path(artifacts["abstain_template"])),
            abstain_below=float(config.get("abstain_below", 0.35)),
            metadata={"model_name": str(config.get("model_name", "")),
                      "model_version": str(config.get("model_version", ""))})

    def predict(self, context, model_input, params=None):
        """One answer per row of a DataFrame with a `question` column (or a list of str)."""
        import pandas as pd

        questions = (model_input["question"].tolist() if isinstance(model_input, pd.DataFrame)
                     else list(model_input))
        rows = []
        for question in questions:
            answer = self.answerer.answer(str(question))
            rows.append({"question": question, "answer": answer.text,
                         "abstained": answer.abstained,
                         "citations": [hit.doc_id for hit in answer.citations],
                         **answer.metadata})
        return pd.DataFrame(rows)
