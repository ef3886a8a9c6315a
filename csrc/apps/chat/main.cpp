// pyllong-chat: chat with a GGUF model from a terminal, built from the same C++ core as the
// Python package and needing no Python at run time. See options.cpp (--help) for usage.
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <new>
#include <random>
#include <string>
#include <thread>

#include "apps/chat/chat_format.h"
#include "apps/chat/chat_session.h"
#include "apps/chat/generator.h"
#include "apps/chat/interrupt.h"
#include "apps/chat/model_path.h"
#include "apps/chat/options.h"
#include "apps/chat/repl.h"
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
    Generator gen(model, cp, o.sampling, seed_of(o.seed));
    gen.set_end_of_turn(renderer.end_of_turn());
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
