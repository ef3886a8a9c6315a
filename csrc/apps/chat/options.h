// pyllong-chat's command line. Defaults mirror `pyllong chat` (pyllong/cli.py) and the Python
// sampling defaults (pyllong/sampling.py SamplingParams); --help prints each one.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "attention/transition.h"
#include "sampling/sampler.h"

namespace pyllong::chat {

struct ChatOptions {
    std::string model = "smollm2";        // path or a pulled registry name (hub.DEFAULT_MODEL)
    int64_t n_ctx = 0;                    // 0 = min(training context, 4096), like pyllong.Model
    int n_threads = 0;                    // 0 = the CPUs this process may use, at most 16
    int64_t n_batch = 512;
    std::string kv_type = "f16";          // f16 | q8_0
    int64_t se_group = 0, se_window = 0;  // --self-extend G,W; 0 = off
    int64_t n_gpu_layers = 0;             // -ngl: layers on the GPU (CUDA builds); -1 = all
    Transition transition;                // --transition[=ALPHA,BETA[,BANDS]]; off by default
    bool evict_shift = false;             // --evict shift: cut dropped turns out of the KV cache
    // kNN memory, as `pyllong chat --memory...` (pyllong/cli.py _add_memory_args): any --memory*
    // option turns it on; 0 / empty = the default, resolved against the model in main.cpp.
    bool memory = false;
    std::vector<int64_t> memory_layers;   // --memory-layers, sorted and distinct
    std::string memory_mode;              // fot | knn; "" = fot (knn with --memory-index ivf)
    int64_t memory_k = 0;                 // 0 = 64
    std::string memory_index;             // exact | ivf; "" = exact
    int64_t memory_distance = 0;          // 0 = LongLLaMA's
    int64_t memory_cap = 0;               // 0 = unbounded
    int64_t memory_last = 0;              // 0 = W / 2 (or the GGUF's)
    std::optional<std::string> memory_doc;
    std::optional<std::string> memory_load, memory_save;
    int64_t n_predict = 512;              // max tokens per reply (pyllong chat's default)
    SamplingParams sampling;
    int64_t seed = -1;                    // -1 = random
    std::optional<std::string> system;
    std::string chat_format = "auto";
    std::optional<std::string> chat_template;  // overrides the GGUF's template text
    std::optional<std::string> prompt;    // -p: one message, print the reply, exit
    bool json = false;
    bool print_prompt = false;
    bool help = false;
};

// Throws InvalidArgument with one sentence naming the option and what is wrong.
ChatOptions parse_options(int argc, char** argv);

std::string usage_text();

}  // namespace pyllong::chat
