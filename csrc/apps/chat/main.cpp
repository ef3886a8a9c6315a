// pyllong-chat: chat with a GGUF model from a terminal, built from the same C++ core as the
// Python package and needing no Python at run time. See options.cpp (--help) for usage.
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <thread>

#include "apps/chat/chat_format.h"
#include "apps/chat/chat_session.h"
#include "apps/chat/generator.h"
#include "apps/chat/memory_file.h"
#include "apps/chat/interrupt.h"
#include "apps/chat/model_path.h"
#include "apps/chat/options.h"
#include "apps/chat/repl.h"
#include "apps/chat/text_assembler.h"
#include "core/error.h"
#include "model/model_file.h"

namespace pyllong::chat {
namespace {

// model.py _default_threads: the CPUs this process may use, at most 16.
int default_threads() {
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
    return std::clamp(n, 1, 16);
}

uint64_t seed_of(int64_t seed) {
    if (seed >= 0) return static_cast<uint64_t>(seed);
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

ChatFormat choose_format(const ChatOptions& o, std::string_view template_text) {
    if (o.chat_format != "auto") return *format_from_name(o.chat_format);
    if (auto f = detect_format(template_text)) return *f;
    std::fprintf(stderr, "pyllong-chat: warning: the chat template is not one pyllong-chat knows; using chatml "
                         "(choose with --chat-format)\n");
    return ChatFormat::ChatML;
}

// Integers of a GGUF metadata value: a scalar, or an array of any integer type.
std::vector<int64_t> gguf_ints(const GGUFFile& f, const std::string& key) {
    const GGUFKV* kv = f.find(key);
    if (!kv) return {};
    const GGUFValue& v = kv->value;
    if (v.type != ValueType::ARRAY) {
        if (!v.is_int()) throw GGUFError(f.path() + ": metadata key '" + key + "' must be an integer");
        return {v.type == ValueType::U64 ? static_cast<int64_t>(v.u) : v.i};  // hparams read ints the same way
    }
    std::vector<int64_t> out;
    const size_t es = value_type_size(v.elem_type);
    for (uint64_t i = 0; i < v.count; ++i) {
        const uint8_t* p = v.data + i * es;
        int64_t x;
        switch (v.elem_type) {
            case ValueType::U8: x = *p; break;
            case ValueType::I8: x = static_cast<int8_t>(*p); break;
            case ValueType::U16: { uint16_t y; std::memcpy(&y, p, 2); x = y; break; }
            case ValueType::I16: { int16_t y; std::memcpy(&y, p, 2); x = y; break; }
            case ValueType::U32: { uint32_t y; std::memcpy(&y, p, 4); x = y; break; }
            case ValueType::I32: { int32_t y; std::memcpy(&y, p, 4); x = y; break; }
            case ValueType::U64: { uint64_t y; std::memcpy(&y, p, 8); x = static_cast<int64_t>(y); break; }
            case ValueType::I64: { std::memcpy(&x, p, 8); break; }
            default: throw GGUFError(f.path() + ": metadata key '" + key + "' must be an array of integers");
        }
        out.push_back(x);
    }
    return out;
}

// pyllong.Memory._resolve for the --memory options: the caller's options win, then the GGUF's
// `{arch}.memory.layers / .window / .last_context_length` (a FoT-trained model), then the
// defaults (LongLLaMA's layer spacing, W = n_ctx, last_context_length = W / 2).
// With --memory-load (Memory.load): the file's layers, window, last_context_length and options,
// with --memory-mode / -k / -cap over them; the other --memory-* options are not used.
MemoryParams resolve_memory(const ChatOptions& o, const ModelFile& model, int64_t n_ctx, const MemoryFile* file) {
    const GGUFFile& f = model.gguf();
    const std::string arch(f.get_string("general.architecture").value_or(""));
    auto meta_int = [&](const char* key) {
        const auto v = gguf_ints(f, arch + ".memory." + key);
        return v.empty() ? int64_t(0) : v.front();
    };
    MemoryParams mp;
    const int64_t n_layer = model.hparams().n_layer;
    mp.layers = file ? file->layers : o.memory_layers;
    if (mp.layers.empty()) mp.layers = gguf_ints(f, arch + ".memory.layers");
    if (mp.layers.empty()) {  // memory.py default_layers: Python's round() rounds half to even, as nearbyint
        for (const double frac : {0.25, 0.5, 0.75})
            mp.layers.push_back(std::clamp<int64_t>(static_cast<int64_t>(std::nearbyint(n_layer * frac)), 0, n_layer - 1));
        std::sort(mp.layers.begin(), mp.layers.end());
        mp.layers.erase(std::unique(mp.layers.begin(), mp.layers.end()), mp.layers.end());
    }
    for (const int64_t l : mp.layers)
        if (l >= n_layer)
            throw InvalidArgument("--memory-layers: layer " + std::to_string(l) + " is outside this model's layers [0, " +
                                  std::to_string(n_layer) + ")");
    mp.window = file && file->window ? *file->window : meta_int("window");
    if (mp.window <= 0) mp.window = n_ctx;
    mp.last_context_length = file ? file->last_context_length.value_or(0) : o.memory_last;
    if (mp.last_context_length <= 0) mp.last_context_length = meta_int("last_context_length");
    if (mp.last_context_length <= 0) mp.last_context_length = std::max<int64_t>(1, mp.window / 2);
    if (mp.last_context_length > mp.window)
        throw InvalidArgument("--memory-last (" + std::to_string(mp.last_context_length) +
                              ") must not exceed the window W (" + std::to_string(mp.window) + ", set with -c)");
    if (file) {
        mp.ivf = file->index == "ivf";
        mp.mode = memory_mode_from_name(file->mode);
        mp.k = file->k;
        mp.cap = file->cap.value_or(0);
        mp.distance = file->distance.value_or(0);
        mp.n_probe = file->n_probe;
        mp.ivf_min = file->ivf_min;
        return mp;
    }
    mp.ivf = o.memory_index == "ivf";
    mp.mode = memory_mode_from_name(o.memory_mode.empty() ? (mp.ivf ? "knn" : "fot") : o.memory_mode);
    mp.k = o.memory_k > 0 ? o.memory_k : 64;
    mp.cap = o.memory_cap;
    mp.distance = o.memory_distance;
    return mp;
}

// The --memory-doc file as Python's open(path, encoding="utf-8").read() gives it: valid UTF-8,
// universal newlines (\r\n and \r become \n).
std::string read_document(const std::string& path) {
    std::FILE* fp = std::fopen(path.c_str(), "rb");
    if (!fp) throw InvalidArgument("cannot read --memory-doc " + path + ": " + std::strerror(errno));
    std::string raw;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, fp)) > 0) raw.append(buf, n);
    const bool failed = std::ferror(fp) != 0;
    std::fclose(fp);
    if (failed) throw InvalidArgument("cannot read --memory-doc " + path);
    std::string check = raw;
    if (decode_utf8_prefix(check, true) != raw) throw InvalidArgument("--memory-doc " + path + " is not valid UTF-8");
    std::string text;
    text.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\r') {
            text += '\n';
            if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
        } else {
            text += raw[i];
        }
    }
    return text;
}

int run(const ChatOptions& o) {
    const std::string path = resolve_model_path(o.model);
    auto model = ModelFile::open(path);
    const std::string_view template_text = o.chat_template ? std::string_view(*o.chat_template) : model->vocab().chat_template;
    const ChatFormat format = choose_format(o, template_text);

    const auto& vocab = model->vocab();
    auto token_text = [&](int32_t id) { return id >= 0 ? std::string(vocab.tokens[id]) : std::string(); };
    const ChatRenderer renderer(format, {token_text(vocab.bos), token_text(vocab.eos)}, template_text);

    if (o.print_prompt) {
        std::vector<Message> messages;
        if (o.system && !o.system->empty()) messages.push_back({"system", *o.system});
        messages.push_back({"user", o.prompt.value_or("")});
        const std::string text = renderer.render(messages, true);
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fprintf(stderr, "chat format: %s\n", format_name(format));
        return 0;
    }

    ContextParams cp;
    cp.kv_type = kv_type_from_name(o.kv_type);
    const int64_t n_train = model->hparams().n_ctx_train;
    cp.n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min<int64_t>(n_train, 4096);
    if (o.se_window > 0 && o.evict_shift)
        throw InvalidArgument("--evict shift needs a context shift, which SelfExtend does not allow; use --evict rebuild");
    if (o.se_window > 0) {  // as pyllong.Model: W below the training context, n_ctx up to the reach
        if (o.se_window >= n_train)
            throw InvalidArgument("--self-extend: W (" + std::to_string(o.se_window) +
                                  ") must be below the training context (" + std::to_string(n_train) + ")");
        cp.self_extend = make_self_extend(o.se_group, o.se_window);
        const int64_t reach = cp.self_extend.reach(n_train);
        if (o.n_ctx <= 0) cp.n_ctx = std::min<int64_t>(reach, 32768);
        if (cp.n_ctx > reach)
            std::fprintf(stderr, "pyllong-chat: warning: -c %lld exceeds SelfExtend's reach of %lld tokens\n",
                         static_cast<long long>(cp.n_ctx), static_cast<long long>(reach));
    }
    cp.n_threads = o.n_threads > 0 ? o.n_threads : default_threads();
    cp.n_batch = o.n_batch;
    cp.n_gpu_layers = o.n_gpu_layers;
    cp.transition = o.transition;
    std::optional<MemoryFile> file;
    if (o.memory_load)
        file = load_memory_file(*o.memory_load, o.memory_mode, o.memory_k,
                                o.memory_cap > 0 ? std::optional<int64_t>(o.memory_cap) : std::nullopt);
    if (o.memory) {  // pyllong.Model(memory=...): n_ctx becomes the window W
        cp.memory = resolve_memory(o, *model, cp.n_ctx, file ? &*file : nullptr);
        cp.n_ctx = cp.memory.window;
    }
    Generator gen(model, cp, o.sampling, seed_of(o.seed));
    gen.set_end_of_turn(renderer.end_of_turn());
    if (file) {  // Memory._attach: the file must come from this very model
        const MemoryDims have = model_dims(*model);
        if (!(file->dims == have))
            throw MemoryFileError("this memory file was made for a model with " + file->dims.str() + "; this one has " +
                                  have.str());
        if (file->model != memory_model_fingerprint(path))
            throw MemoryFileError("this memory file was made for another model (same shape, other weights); load it "
                                  "with the model that wrote it");
        gen.load_memory(file->keys, file->values, file->tokens);
    }
    if (o.memory_doc) {  // Memory.add_document: special-token spellings parsed, BOS where the vocabulary asks
        const auto tokens = gen.tokenizer().encode(read_document(*o.memory_doc), true, true);
        gen.add_document(tokens);
        std::fprintf(stderr, "[memory: read %zu tokens of %s]\n", tokens.size(), o.memory_doc->c_str());
    }
    if (o.memory_save) save_memory_file(*o.memory_save, gen.memory(), *model, path);
    ChatSession session(gen, renderer, o.system, o.n_predict, o.evict_shift);
    install_interrupt_handler();
    return run_chat({o, session, path, format_name(format)});
}

}  // namespace
}  // namespace pyllong::chat

int main(int argc, char** argv) {
    using namespace pyllong;
    chat::ChatOptions options;
    try {
        options = chat::parse_options(argc, argv);
    } catch (const Error& e) {
        std::fprintf(stderr, "pyllong-chat: %s\n", e.what());
        return 2;
    }
    if (options.help) {
        std::fputs(chat::usage_text().c_str(), stdout);
        return 0;
    }
    try {
        return chat::run(options);
    } catch (const Error& e) {  // bad model file, bad path, a message that cannot fit
        std::fprintf(stderr, "pyllong-chat: %s\n", e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "pyllong-chat: out of memory (try a smaller -c)\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pyllong-chat: error: %s\n", e.what());
        return 1;
    }
}
