/* model.h — transformer models: configuration, parameters (named as in the checkpoint), forward and
 * backward on the tape, task heads and losses, and KV-cache generation.
 *
 * Architectures: GPT-2 (pre-LN, learned positions, fused q|k|v Conv1D weights [in,out], tanh GELU, tied
 * head), Llama (pre-RMSNorm, RoPE, grouped-query attention, SwiGLU, tied or untied head) and BERT /
 * RoBERTa encoders (post-LN, learned + token-type positions, erf GELU, bidirectional attention with a
 * padding mask). Tasks: causal LM (loss = mean next-token cross-entropy, labels shifted by one, -100
 * ignored) and sequence classification (decoders: the last non-padding token's hidden state through
 * `score`; RoBERTa: classifier.dense + tanh + classifier.out_proj on the first token; BERT: pooler +
 * classifier), loss = mean cross-entropy over the batch.
 *
 * Loading lives in model_hf.c (Hugging Face folders) and model_llama2c.c (llama2.c .bin); building the
 * parameter table in model_build.c; the tape forward in model_forward.c; generation in generate.c.
 * This header does not parse files itself.
 */
#ifndef SF_MODEL_H
#define SF_MODEL_H

#include "graph.h"
#include "ops.h"

typedef enum { SF_ARCH_GPT2 = 0, SF_ARCH_LLAMA, SF_ARCH_BERT, SF_ARCH_ROBERTA } sf_arch;
typedef enum { SF_TASK_LM = 0, SF_TASK_CLASSIFY = 1 } sf_task;

typedef struct {
    sf_arch arch;
    char model_type[32];  /* "gpt2", "llama", "bert", "roberta" */
    int64_t vocab_size;
    int64_t n_layer;
    int64_t n_head;
    int64_t n_kv_head;
    int64_t d_model;
    int64_t d_ff;
    int64_t head_dim;
    int64_t max_pos;       /* learned position table size (GPT-2, BERT) or context length (Llama) */
    int64_t type_vocab;    /* BERT token types (0 = none) */
    float norm_eps;
    float rope_theta;
    sf_rope_kind rope_kind;
    sf_gelu_kind gelu;
    int tied_head;         /* LM head shares the token embedding */
    int64_t pad_token_id;  /* -1 if none */
    int64_t bos_token_id;  /* -1 if none */
    int64_t eos_token_id;  /* -1 if none */
    int64_t position_offset; /* RoBERTa: pad_token_id + 1; others 0 */
    int64_t num_labels;    /* classification head size (0 for LM) */
    int attn_bias;         /* q/k/v/o projections have biases */
    int mlp_bias;
} sf_model_config;

typedef struct {
    /* attention */
    sf_tensor *ln1_w, *ln1_b;             /* GPT-2 ln_1, Llama input_layernorm, BERT attention.output.LayerNorm */
    sf_tensor *wqkv, *bqkv;               /* GPT-2 c_attn (C, 3C) */
    sf_tensor *wq, *bq, *wk, *bk, *wv, *bv; /* Llama / BERT, [out, in] */
    sf_tensor *wo, *bo;
    /* MLP */
    sf_tensor *ln2_w, *ln2_b;             /* GPT-2 ln_2, Llama post_attention_layernorm, BERT output.LayerNorm */
    sf_tensor *w_up, *b_up;               /* GPT-2 c_fc, Llama up_proj, BERT intermediate.dense */
    sf_tensor *w_gate;                    /* Llama gate_proj */
    sf_tensor *w_down, *b_down;           /* GPT-2 mlp.c_proj, Llama down_proj, BERT output.dense */
} sf_layer;

typedef struct {
    char *name;
    sf_tensor *t;
    int is_head; /* belongs to a task head (trained densely by default) */
    int is_new;  /* created at load time (not in the checkpoint) */
} sf_param_entry;

/* Key/value cache for generation: (n_layer, max_T, n_kv_head*head_dim) each. */
typedef struct {
    float *k, *v;
    int64_t max_T, len;
} sf_kv_cache;

typedef struct sf_model {
    sf_model_config cfg;
    sf_task task;
    char *source;              /* path it was loaded from */
    sf_param_entry *params;    /* checkpoint order */
    int n_params, cap_params;
    sf_layer *layers;          /* (n_layer) */
    sf_tensor *wte, *wpe, *wtt;        /* token, position, token-type embeddings */
    sf_tensor *ln_emb_w, *ln_emb_b;    /* BERT embeddings.LayerNorm */
    sf_tensor *lnf_w, *lnf_b;          /* final norm (decoders) */
    sf_tensor *lm_head;                /* (V, C) untied head, or NULL when tied to wte */
    sf_tensor *score_w;                /* decoders' classification head (num_labels, C) */
    sf_tensor *cls_dense_w, *cls_dense_b, *cls_out_w, *cls_out_b; /* RoBERTa head / BERT pooler + classifier */
    char **unused;                     /* checkpoint tensors that were not used (reported) */
    int n_unused;
    struct sf_lora_set *lora;          /* LoRA adapters consulted by every block linear (not owned) */
    int loss_only;                     /* LM with labels: fuse head + loss, keep no logits (m->logits = NULL) */
    int keep_padding;                  /* 1: never pack a right-padded batch (sf_model_forward), 0 by default */
    /* state of the last forward */
    sf_graph *graph;
    sf_tensor *logits;  /* graph-owned: (B, T, V) for LM, (B, num_labels) for classification */
    sf_tensor *loss;    /* graph-owned one-element tensor, or NULL */
} sf_model;

typedef struct {
    sf_task task;
    int64_t num_labels;   /* for SF_TASK_CLASSIFY (default 2) */
    uint64_t seed;        /* initialisation of new heads */
} sf_load_options;

/* Loads a Hugging Face folder (config.json + model.safetensors or a sharded index) or a llama2.c .bin.
 * opts may be NULL (LM task). */
sf_model *sf_model_load(const char *path, const sf_load_options *opts);
sf_model *sf_model_load_hf(const char *dir, const sf_load_options *opts);
sf_model *sf_model_load_llama2c(const char *path, const sf_load_options *opts);
void sf_model_free(sf_model *m);

/* Parses a Hugging Face config.json into cfg. */
sf_status sf_config_from_hf_json(const char *path, sf_model_config *cfg);

/* Builds the parameter table (names, shapes, per-layer pointers) for cfg/task with zero tensors
 * (the loaders fill them). New heads get Hugging Face's init: N(0, 0.02) weights, zero biases. */
sf_model *sf_model_build(const sf_model_config *cfg, sf_task task, int64_t num_labels);
/* Fills every parameter with Hugging Face's default init from a seed (for random-init experiments):
 * N(0, 0.02) for matrices and embeddings (GPT-2 c_proj: 0.02/sqrt(2 n_layer)), zero biases, norms 1. */
void sf_model_init_random(sf_model *m, uint64_t seed);
/* Initialises only the parameters marked is_new (task heads absent from the checkpoint). */
void sf_model_init_new_heads(sf_model *m, uint64_t seed);

sf_tensor *sf_model_param(const sf_model *m, const char *name);
/* Layout of a 2-D block weight (GPT-2 Conv1D weights are [in, out], everything else [out, in]). */
sf_wlayout sf_model_weight_layout(const sf_model *m, const sf_tensor *w);
const sf_param_entry *sf_model_param_entry(const sf_model *m, const char *name);
int64_t sf_model_num_params(const sf_model *m);

/* Forward on the model's own graph (reset first). ids: i64 (B, T); mask: i64 (B, T) or NULL
 * (1 = real token); labels: i64 (B, T) for LM, (B) for classification, f32 (B) for a regression head
 * (num_labels = 1: mean squared error, as Hugging Face's problem_type "regression"), or NULL. Records
 * the tape only when `train` is set (and some parameter requires grad). Sets m->logits / m->loss. */
sf_status sf_model_forward(sf_model *m, sf_tensor *ids, sf_tensor *mask, sf_tensor *labels, int train);
/* A classification head of one output: a regression head (labels are f32 targets, the loss is the MSE). */
static inline int sf_model_is_regression(const sf_model *m) {
    return m->task == SF_TASK_CLASSIFY && m->cfg.num_labels == 1;
}
/* Back-propagates m->loss. */
sf_status sf_model_backward(sf_model *m);
/* Back-propagates scale * m->loss (the gradients accumulate): a batch run as several parts, each
 * scaled by its share of the batch's loss terms, sums to the gradient of the whole batch's mean. */
sf_status sf_model_backward_scaled(sf_model *m, float scale);
/* Marks every parameter trainable (1) or frozen (0). */
void sf_model_set_trainable(sf_model *m, int trainable);

/* Generation (decoders): prompt ids (n_prompt) -> writes up to max_new new ids into out (caller
 * allocates n_prompt + max_new), returns the total count in *n_out. temperature 0 = greedy; otherwise
 * sampling from softmax(logits / temperature) with the seed. Stops early at eos when stop_at_eos.
 * Uses a KV cache: the prompt costs one multi-row forward, each new token one single-position forward.
 * SF_ERR_INTERRUPTED when sf_interrupt_request (Ctrl-C) arrives meanwhile (checked before each new token and
 * before each layer of a prompt's forward). */
sf_status sf_model_generate(sf_model *m, const int64_t *prompt, int64_t n_prompt, int64_t max_new,
                            float temperature, uint64_t seed, int stop_at_eos, int64_t *out, int64_t *n_out);

/* The generation's attention (exposed for its tests): n query rows q (n, NH*HD) at positions pos0..pos0+n-1
 * attend causally over the cached keys/values kc, vc (pos0+n, NKV*HD; NH a multiple of NKV) -> att (n, NH*HD),
 * scaled by 1/sqrt(HD). Fewer than 8 rows one at a time on the calling thread; more (a prompt) in blocks of
 * query rows per head through the gemm kernel, on the engine's threads. scratch holds
 * sf_cached_attention_scratch(n, pos0 + n) floats; a later thread count needs it sized again. */
int64_t sf_cached_attention_scratch(int64_t n, int64_t max_T);
void sf_cached_attention(float *att, const float *q, const float *kc, const float *vc, float *scratch, int64_t n,
                         int64_t pos0, int64_t NH, int64_t NKV, int64_t HD);

#endif
