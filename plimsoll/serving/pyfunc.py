"""The MLflow pyfunc model of a candidate: encoder + index snapshot + templates + guard.

Importing this module imports MLflow (the model is an mlflow.pyfunc.PythonModel): import it
where a model is registered or loaded, inside the function that does it.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc

from plimsoll.common.settings import ABSTAIN_BELOW
from plimsoll.release.registry import PyfuncModel


def pyfunc_model() -> PyfuncModel:
    """What the registry saves as each version's model: DocsAssistantModel and its signature."""
    return PyfuncModel(DocsAssistantModel(), model_signature())


def model_signature():
    """Input: a `question` column. Param `answer_mode`: "" (the deployment's), answer, facts."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", "question")]),
                          params=ParamSchema([ParamSpec("answer_mode", "string", "")]))


class DocsAssistantModel(mlflow.pyfunc.PythonModel):
    """Answers questions with the model, template, snapshot and guard action of each.

    `params={"answer_mode": "facts"}` switches one request to strict quotes;
    PLIMSOLL_ANSWER_MODE=facts switches the whole deployment (the incident lever).
    """

    def load_context(self, context) -> None:
        """Open the bundled encoder, snapshot, templates, guard policy and classifier."""
        from plimsoll.serving.bundles import build_answerer

        config = context.model_config or {}
        artifacts = context.artifacts
        policy = artifacts.get("guard_policy")
        classifier = artifacts.get("guard_classifier")  # absent in versions registered before
        options = dict(abstain_below=float(config.get("abstain_below", ABSTAIN_BELOW)),
                       guard_policy=Path(policy) if policy else None,
                       guard_classifier=Path(classifier) if classifier else None,
                       metadata={"model_name": str(config.get("model_name", "")),
                                 "model_version": str(config.get("model_version", ""))})
        parts = (Path(artifacts["encoder"]), Path(artifacts["index_snapshot"]),
                 Path(artifacts["answer_template"]), Path(artifacts["abstain_template"]))
        self.answerer = build_answerer(*parts, **options)
        self._build = lambda mode: build_answerer(*parts, **options, mode=mode)
        self._by_mode = {self.answerer.mode: self.answerer}

    # MLflow passes `context` by name (it inspects this signature): the name must stay.
    def predict(self, context, model_input, params=None):  # noqa: ARG002
        """One answer per row of a DataFrame with a `question` column (or a list of str).

        Each question goes through `Answerer.answer`, which refuses one that is not a string
        or is over the guard policy's max_input_chars (that row says so in guard_findings)
        and reads invalid Unicode as U+FFFD, so one bad row never fails the others.
        """
        import pandas as pd

        mode = (params or {}).get("answer_mode") or self.answerer.mode
        if mode not in self._by_mode:
            self._by_mode[mode] = self._build(mode)
        answerer = self._by_mode[mode]
        rows = []
        for question in _questions(model_input):
            answer = answerer.answer(question)
            rows.append({"question": question, "answer": answer.text,
                         "abstained": answer.abstained, "refused": answer.refused,
                         "guard_action": answer.guard.action,
                         "guard_findings": [f.as_dict() for f in answer.guard.findings],
                         "citations": [hit.doc_id for hit in answer.citations],
                         **answer.metadata})
        return pd.DataFrame(rows)


def _questions(model_input) -> list:
    """The questions of a request: a `question` column, a list, or one string."""
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    if isinstance(model_input, pd.DataFrame):
        if "question" not in model_input.columns:
            raise MlflowException(
                f"the input has no 'question' column (it has {list(model_input.columns)}); "
                "send one question per row in a 'question' column",
                error_code=INVALID_PARAMETER_VALUE)
        return model_input["question"].tolist()
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, (list, tuple, pd.Series)):
        return list(model_input)
    raise MlflowException(
        f"the input is {type(model_input).__name__}; send a DataFrame with a 'question' "
        "column or a list of questions", error_code=INVALID_PARAMETER_VALUE)
