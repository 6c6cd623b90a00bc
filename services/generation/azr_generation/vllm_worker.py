"""Runs inside vLLM's worker processes (`worker_extension_cls`): in-place weight reload.

vLLM's own `reload_weights` reloads every tensor, but on CPU a model with tied embeddings
(SmolLM2, small Qwen2.5) keeps computing logits with the old embedding matrix: `lm_head`
holds a pre-packed copy made when the model was first loaded. Re-running its quantization
method's post-load step re-packs it (on GPU this step is harmless).
"""


class WeightReloadExtension:
    def azr_reload_weights(self, weights_path: str) -> None:
        from vllm.config import set_current_vllm_config

        self.reload_weights(weights_path=weights_path)
        lm_head = getattr(self.model_runner.get_model(), "lm_head", None)
        method = getattr(lm_head, "quant_method", None)
        if method is not None:
            with set_current_vllm_config(self.vllm_config):
                method.process_weights_after_loading(lm_head)
