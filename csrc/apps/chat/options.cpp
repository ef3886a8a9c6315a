#include "apps/chat/options.h"

#include "attention/self_extend.h"
#include "attention/transition.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string_view>
#include <vector>

#include "apps/chat/chat_format.h"
#include "core/error.h"

namespace pyllong::chat {

namespace {

double parse_double(const std::string& opt, const std::string& v) {
    char* end = nullptr;
    errno = 0;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(d))
        throw InvalidArgument(opt + " expects a number, got '" + v + "'");
    return d;
}

int64_t parse_int(const std::string& opt, const std::string& v, int64_t lo, int64_t hi) {
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE)
        throw InvalidArgument(opt + " expects an integer, got '" + v + "'");
    if (x < lo || x > hi)
        throw InvalidArgument(opt + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v);
    return x;
}

// A context size may be written 4096 or 4k, as `pyllong chat --ctx` accepts.
int64_t parse_ctx(const std::string& opt, std::string v) {
    int64_t scale = 1;
    if (!v.empty() && (v.back() == 'k' || v.back() == 'K')) v.pop_back(), scale = 1024;
    return parse_int(opt, v, 1, (int64_t(1) << 24) / scale) * scale;
}

// --memory-layers 6,12,18: layer indices >= 0, kept sorted and distinct (as pyllong.Memory).
std::vector<int64_t> parse_layers(const std::string& opt, const std::string& v) {
    std::vector<int64_t> layers;
    size_t at = 0;
    while (true) {
        const size_t comma = v.find(',', at);
        const std::string item = v.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        char* end = nullptr;
        errno = 0;
        const long long x = std::strtoll(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || errno == ERANGE)
            throw InvalidArgument(opt + " takes layer indices like 6,12,18, got '" + v + "'");
        if (x < 0) throw InvalidArgument(opt + ": a layer index must be >= 0, got " + item);
        layers.push_back(x);
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    std::sort(layers.begin(), layers.end());
    layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
    return layers;
}

// Combinations pyllong.Model / ChatSession refuse, checked before any model is read.
void check_combinations(const ChatOptions& o) {
    if (o.memory_index == "ivf" && o.memory_mode == "fot")
        throw InvalidArgument("--memory-index ivf searches top-k keys; use it with --memory-mode knn");
    if (!o.memory) return;
    if (o.evict_shift)
        throw InvalidArgument("--evict shift cannot be combined with --memory: old turns move into the memory "
                              "instead of being cut out; use --evict rebuild");
    if (o.se_window > 0) throw InvalidArgument("--memory cannot be combined with --self-extend; choose one");
    if (o.transition.enabled)
        throw InvalidArgument("the kNN memory and the Attention Transition cannot be combined; choose one");
}

std::string fmt(double d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", d);
    return buf;
}

struct Option {
    const char* names;     // "-c, --ctx-size"
    const char* metavar;   // "" for a flag
    std::string help;      // ends with the default
    std::function<void(ChatOptions&, const std::string& opt, const std::string& value)> set;
    bool inline_value_ok = false;  // a flag that also takes --name=VALUE
};

std::vector<Option> option_table() {
    const ChatOptions d;
    const SamplingParams s;
    return {
        {"-m, --model", "PATH|NAME", "GGUF file, or a model pulled with `pyllong pull` (default: " + d.model + ")",
         [](ChatOptions& o, auto&, auto& v) { o.model = v; }},
        {"-c, --ctx-size", "N", "context length in tokens, e.g. 4096 or 4k (default: min(training context, 4096))",
         [](ChatOptions& o, auto& n, auto& v) { o.n_ctx = parse_ctx(n, v); }},
        {"-t, --threads", "N", "CPU threads (default: the CPUs this process may use, at most 16)",
         [](ChatOptions& o, auto& n, auto& v) { o.n_threads = static_cast<int>(parse_int(n, v, 1, 1024)); }},
        {"-b, --batch-size", "N", "prompt tokens per forward call (default: " + std::to_string(d.n_batch) + ")",
         [](ChatOptions& o, auto& n, auto& v) { o.n_batch = parse_int(n, v, 1, 1 << 20); }},
        {"--kv-type", "TYPE", "KV-cache storage: f16, or q8_0 at about half the memory (default: " + d.kv_type + ")",
         [](ChatOptions& o, auto& n, auto& v) {
             if (v != "f16" && v != "q8_0") throw InvalidArgument(n + " must be f16 or q8_0, got '" + v + "'");
             o.kv_type = v;
         }},
        {"--self-extend", "G,W", "SelfExtend grouped attention: group size G, neighbour window W, reading up to "
                                 "(L - W) * G + W tokens of a model trained on L (default: off)",
         [](ChatOptions& o, auto& n, auto& v) {
             const size_t comma = v.find(',');
             if (comma == std::string::npos) throw InvalidArgument(n + " expects G,W (e.g. 4,1024), got '" + v + "'");
             o.se_group = parse_int(n, v.substr(0, comma), 1, 1 << 20);
             o.se_window = parse_int(n, v.substr(comma + 1), 1, 1 << 24);
             make_self_extend(o.se_group, o.se_window);  // W % G == 0
         }},
        {"-ngl, --n-gpu-layers", "N", "layers to run on the GPU (CUDA builds): N = the first N, -1 = all "
                                      "(default: 0, CPU only)",
         [](ChatOptions& o, auto& n, auto& v) { o.n_gpu_layers = parse_int(n, v, -1, 1 << 20); }},
        {"--transition", "", "Attention Transition on the prompt pass (CPU and GPU layers); --transition=ALPHA,BETA[,BANDS] "
                             "sets its options (default: off; bare = the reference 0.5,0.1,2)",
         [](ChatOptions& o, auto& n, auto& v) {
             o.transition = Transition{true};
             if (v.empty()) return;
             const size_t c1 = v.find(','), c2 = c1 == std::string::npos ? c1 : v.find(',', c1 + 1);
             if (c1 == std::string::npos)
                 throw InvalidArgument(n + " expects ALPHA,BETA[,BANDS] (e.g. 0.5,0.1,2), got '" + v + "'");
             const auto alpha = static_cast<float>(parse_double(n, v.substr(0, c1)));
             const auto beta = static_cast<float>(parse_double(n, v.substr(c1 + 1, c2 - c1 - 1)));
             const int64_t bands = c2 == std::string::npos ? 2 : parse_int(n, v.substr(c2 + 1), 1, 64);
             o.transition = make_transition(alpha, beta, bands);
         }, true},
        {"--evict", "MODE", "when the context fills, drop whole old turns (never the system prompt) and "
                            "re-evaluate the rest (rebuild), or cut them out of the KV cache (shift) (default: rebuild)",
         [](ChatOptions& o, auto& n, auto& v) {
             if (v != "rebuild" && v != "shift") throw InvalidArgument(n + " must be rebuild or shift, got '" + v + "'");
             o.evict_shift = v == "shift";
         }},
        {"--memory", "", "attend to a kNN key-value memory (LongLLaMA-style) of earlier text: turns leaving the "
                         "local window move into memory instead of being dropped; -c is then the window W "
                         "(default: off; any --memory-* option turns it on)",
         [](ChatOptions& o, auto&, auto&) { o.memory = true; }},
        {"--memory-layers", "L,L,..", "memory layers (default: the GGUF's, else a quarter, half and three quarters deep)",
         [](ChatOptions& o, auto& n, auto& v) { o.memory = true, o.memory_layers = parse_layers(n, v); }},
        {"--memory-mode", "MODE", "fot (every memory key) or knn (each query's top-k keys) "
                                  "(default: fot; knn with --memory-index ivf)",
         [](ChatOptions& o, auto& n, auto& v) {
             if (v != "fot" && v != "knn") throw InvalidArgument(n + " must be fot or knn, got '" + v + "'");
             o.memory = true, o.memory_mode = v;
         }},
        {"--memory-k", "K", "knn: memory keys per query (default: 64)",
         [](ChatOptions& o, auto& n, auto& v) { o.memory = true, o.memory_k = parse_int(n, v, 1, INT32_MAX); }},
        {"--memory-index", "INDEX", "knn search: exact scan, or an approximate IVF index (ivf) (default: exact)",
         [](ChatOptions& o, auto& n, auto& v) {
             if (v != "exact" && v != "ivf") throw InvalidArgument(n + " must be exact or ivf, got '" + v + "'");
             o.memory = true, o.memory_index = v;
         }},
        {"--memory-distance", "D", "see every memory key D tokens back (default: LongLLaMA's, the query's window "
                                   "position)",
         [](ChatOptions& o, auto& n, auto& v) { o.memory = true, o.memory_distance = parse_int(n, v, 1, 1 << 24); }},
        {"--memory-cap", "N", "most tokens in memory, oldest dropped first (default: unbounded)",
         [](ChatOptions& o, auto& n, auto& v) { o.memory = true, o.memory_cap = parse_int(n, v, 1, int64_t(1) << 40); }},
        {"--memory-last", "N", "tokens of a long input kept in the window (default: W/2)",
         [](ChatOptions& o, auto& n, auto& v) { o.memory = true, o.memory_last = parse_int(n, v, 1, 1 << 24); }},
        {"--memory-doc", "FILE", "read this UTF-8 file into memory first; every conversation starts from it "
                                 "(default: none)",
         [](ChatOptions& o, auto&, auto& v) { o.memory = true, o.memory_doc = v; }},
        {"--memory-save", "FILE", "save the memory after --memory-doc (a pyllong memory file, as `pyllong chat "
                                  "--memory-save`) (default: none)",
         [](ChatOptions& o, auto&, auto& v) { o.memory = true, o.memory_save = v; }},
        {"--memory-load", "FILE", "start from a memory saved with --memory-save (by pyllong-chat or pyllong); its "
                                  "layers, window and options come from the file, --memory-mode/-k/-cap may change "
                                  "them (default: none)",
         [](ChatOptions& o, auto&, auto& v) { o.memory = true, o.memory_load = v; }},
        {"-n, --n-predict", "N", "max tokens per reply (default: " + std::to_string(d.n_predict) + ")",
         [](ChatOptions& o, auto& n, auto& v) { o.n_predict = parse_int(n, v, 0, int64_t(1) << 30); }},
        {"--temp", "T", "temperature; 0 = greedy (default: " + fmt(s.temperature) + ")",
         [](ChatOptions& o, auto& n, auto& v) { o.sampling.temperature = parse_double(n, v); }},
        {"--top-k", "K", "keep the K most likely tokens; 0 = off (default: " + std::to_string(s.top_k) + ")",
         [](ChatOptions& o, auto& n, auto& v) { o.sampling.top_k = static_cast<int32_t>(parse_int(n, v, 0, INT32_MAX)); }},
        {"--top-p", "P", "nucleus sampling; 1 = off (default: " + fmt(s.top_p) + ")",
         [](ChatOptions& o, auto& n, auto& v) { o.sampling.top_p = parse_double(n, v); }},
        {"--min-p", "P", "keep tokens with p >= min_p * p(top); 0 = off (default: " + fmt(s.min_p) + ")",
         [](ChatOptions& o, auto& n, auto& v) { o.sampling.min_p = parse_double(n, v); }},
        {"--repeat-penalty", "X", "penalty for recent tokens; 1 = off (default: " + fmt(s.repeat_penalty) + ")",
         [](ChatOptions& o, auto& n, auto& v) { o.sampling.repeat_penalty = parse_double(n, v); }},
        {"--repeat-last-n", "N", "penalty window in tokens; 0 = off, -1 = whole context (default: " +
                                     std::to_string(s.repeat_last_n) + ")",
         [](ChatOptions& o, auto& n, auto& v) { o.sampling.repeat_last_n = static_cast<int32_t>(parse_int(n, v, -1, INT32_MAX)); }},
        {"--seed", "N", "random seed; -1 = random (default: -1)",
         [](ChatOptions& o, auto& n, auto& v) { o.seed = parse_int(n, v, -1, INT64_MAX); }},
        {"--system", "TEXT", "system prompt, kept when old turns are dropped (default: none)",
         [](ChatOptions& o, auto&, auto& v) { o.system = v; }},
        {"--chat-format", "NAME", "auto (from the model's template) or one of " + format_names() + " (default: auto)",
         [](ChatOptions& o, auto& n, auto& v) {
             if (v != "auto" && !format_from_name(v))
                 throw InvalidArgument(n + " must be auto or one of " + format_names() + ", got '" + v + "'");
             o.chat_format = v;
         }},
        {"--chat-template", "TEXT", "detect the format from this template text instead of the model's (default: none)",
         [](ChatOptions& o, auto&, auto& v) { o.chat_template = v; }},
        {"-p, --prompt", "TEXT", "one message: print the reply and exit (default: interactive, or stdin lines)",
         [](ChatOptions& o, auto&, auto& v) { o.prompt = v; }},
        {"--json", "", "print the conversation as one JSON object at the end instead of streaming (default: off)",
         [](ChatOptions& o, auto&, auto&) { o.json = true; }},
        {"--print-prompt", "", "print the rendered prompt of --system and -p, then exit (default: off)",
         [](ChatOptions& o, auto&, auto&) { o.print_prompt = true; }},
        {"-h, --help", "", "show this help and exit", [](ChatOptions& o, auto&, auto&) { o.help = true; }},
    };
}

bool has_name(const char* names, std::string_view a) {
    std::string_view n(names);
    while (!n.empty()) {
        const size_t comma = n.find(", ");
        if (n.substr(0, comma) == a) return true;
        if (comma == std::string_view::npos) break;
        n.remove_prefix(comma + 2);
    }
    return false;
}

}  // namespace

ChatOptions parse_options(int argc, char** argv) {
    ChatOptions o;
    const auto table = option_table();
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i], value;
        bool inline_value = false;
        if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {  // --temp=0
            value = a.substr(a.find('=') + 1);
            a = a.substr(0, a.find('='));
            inline_value = true;
        }
        const Option* opt = nullptr;
        for (const auto& t : table)
            if (has_name(t.names, a)) opt = &t;
        if (!opt) throw InvalidArgument("unknown option '" + a + "' (see --help)");
        if (*opt->metavar && !inline_value) {
            if (i + 1 >= argc) throw InvalidArgument(a + " needs a value (" + opt->metavar + ")");
            value = argv[++i];
        } else if (!*opt->metavar && inline_value && !opt->inline_value_ok) {
            throw InvalidArgument(a + " takes no value");
        }
        opt->set(o, a, value);
        if (o.help) return o;
    }
    o.sampling.validate();
    check_combinations(o);
    return o;
}

std::string usage_text() {
    std::string s =
        "usage: pyllong-chat [-m MODEL] [options]\n"
        "\n"
        "Chat with a GGUF model from the terminal (no Python needed). Interactive on a terminal;\n"
        "otherwise each stdin line is one user message (end a line with \\ to continue it).\n"
        "Commands: /reset (forget the conversation), /system [TEXT], /exit. Ctrl-C stops a reply,\n"
        "Ctrl-D (end of input) exits.\n"
        "\n"
        "options:\n";
    for (const auto& o : option_table()) {
        std::string left = std::string("  ") + o.names + (*o.metavar ? std::string(" ") + o.metavar : "");
        if (left.size() < 28) left.resize(28, ' ');
        else left += "\n" + std::string(28, ' ');
        s += left + o.help + "\n";
    }
    return s;
}

}  // namespace pyllong::chat
