"""Serving: inference per model (alias live), the LLM gateway, canary alarms (models and
prompts), approvals, feedback, retraining requests, prompt registrations, the REST API,
the people's and applications' roles and the stage's platform record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Stack

from infra.catalog import RUNTIME_LAYERS
from infra.constructs.approval_gate import ApprovalGate
from infra.constructs.canary_alarms import CanaryAlarms, PromptCanaryAlarms
from infra.constructs.data_refs import DataRefs
from infra.constructs.feedback_intake import FeedbackIntake
from infra.constructs.function import SharedLayers
from infra.constructs.inference_api import InferenceApi
from infra.constructs.inference_service import InferenceService
from infra.constructs.llm_gateway import LlmGateway
from infra.constructs.personas import Personas
from infra.constructs.platform_record import PlatformRecord
from infra.constructs.promotion_workflow import PublishPolicy
from infra.constructs.prompt_registrations import PromptRegistrations
from infra.constructs.retrain_requests import RetrainRequests

if TYPE_CHECKING:
    from constructs import Construct

    from infra.context import StageContext


def pascal(name: str) -> str:
    return "".join(part.title() for part in name.replace("_", "-").split("-"))


class ServingStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, ctx: StageContext, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        data = DataRefs(self, "Data", ctx=ctx)
        layers = SharedLayers(
            self, "Layers", ctx=ctx, keys=RUNTIME_LAYERS, stack_key="serving"
        ).layers
        self.services = {
            model.name: InferenceService(
                self,
                f"Inference{pascal(model.name)}",
                ctx=ctx,
                model=model,
                layers=layers,
                data=data,
            )
            for model in ctx.config.models
        }
        self.alarms = {
            name: CanaryAlarms(
                self, f"CanaryAlarms{pascal(name)}", ctx=ctx, model_name=name, alias=service.alias
            )
            for name, service in self.services.items()
        }
        # One gateway for every prompt (the domain and base layers: no model to load).
        self.llm = LlmGateway(self, "LlmGateway", ctx=ctx, layers=layers, data=data)
        self.prompt_alarms = {
            prompt: PromptCanaryAlarms(
                self, f"PromptCanaryAlarms{pascal(prompt)}", ctx=ctx, prompt=prompt
            )
            for prompt in ctx.config.llm.prompts
        }
        self.approvals = ApprovalGate(self, "Approvals", ctx=ctx, layers=layers, data=data)
        self.feedback = FeedbackIntake(self, "Feedback", ctx=ctx, layers=layers, data=data)
        self.retrain = RetrainRequests(self, "Retrain", ctx=ctx, layers=layers, data=data)
        # People's prompt versions in this stage: registered by the route as its caller.
        self.prompt_versions = PromptRegistrations(
            self, "PromptVersions", ctx=ctx, layers=layers, data=data
        )
        self.api = InferenceApi(
            self,
            "Api",
            ctx=ctx,
            predictors={name: service.alias for name, service in self.services.items()},
            approvals=self.approvals.handler.function,
            feedback=self.feedback.handler.function,
            retrain=self.retrain.handler.function,
            gateway=self.llm.handler.function,
            prompt_versions=self.prompt_versions.handler.function,
        )
        # What the promotion workflow's publish step may change on the inference functions.
        self.publish = PublishPolicy(self, "PublishPolicy", ctx=ctx, layers=list(layers.values()))
        self.platform = PlatformRecord(self, "Platform", ctx=ctx, api=self.api.api)
        self.personas = Personas(
            self, "Personas", ctx=ctx, data=data, api=self.api.api, platform=self.platform.parameter
        )
