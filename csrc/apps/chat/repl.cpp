#include "apps/chat/repl.h"

#include <unistd.h>

#include <cstdio>

#include "apps/chat/interrupt.h"
#include "apps/chat/json_writer.h"
#include "apps/chat/line_reader.h"
#include "core/error.h"

namespace pyllong::chat {

namespace {

constexpr const char* kCommands =
    "commands: /reset (forget the conversation), /system [TEXT] (show or set the system prompt), /exit; "
    "end a line with \\ to continue it; Ctrl-C stops a reply; Ctrl-D exits";

void write_out(const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
}

std::string strip(const std::string& s) {
    const char* ws = " \t\n\r\v\f";
    const size_t b = s.find_first_not_of(ws);
    return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(ws) - b + 1);
}

class Conversation {
public:
    explicit Conversation(const ReplContext& ctx) : ctx_(ctx) {}

    // One user message -> the streamed reply. False when the turn failed (message too long).
    bool reply(const std::string& message) {
        const bool stream = !ctx_.options.json;
        transcript_.add_user(message);
        clear_interrupt();
        try {
            const Reply r = ctx_.session.send(message, [&](const std::string& piece) {
                if (stream) write_out(piece);
            });
            transcript_.add_reply(r);
            if (stream) write_out("\n");
            if (r.finish_reason == "interrupted") {
                std::fputs("[reply interrupted]\n", stderr);
                interrupted_ = true;
            }
            clear_interrupt();
            return true;
        } catch (const Error& e) {
            transcript_.add_error(e.what());
            std::fprintf(stderr, "pyllong-chat: %s\n", e.what());
            return false;
        }
    }

    int finish(int code) const {
        if (ctx_.options.json) {
            const Generator& gen = ctx_.session.generator();
            write_out(transcript_.to_json(ctx_.model_path, ctx_.format_name, ctx_.session.system(),
                                          ctx_.session.dropped_turns(), gen.n_evaluated(),
                                          gen.has_memory() ? &gen.memory() : nullptr,
                                          gen.n_past()));
        }
        return code;
    }

    bool interrupted() const { return interrupted_; }

private:
    const ReplContext& ctx_;
    Transcript transcript_;
    bool interrupted_ = false;
};

}  // namespace

int run_chat(const ReplContext& ctx) {
    Conversation conv(ctx);
    if (ctx.options.prompt) {
        if (!conv.reply(*ctx.options.prompt)) return conv.finish(1);
        return conv.finish(conv.interrupted() ? 130 : 0);
    }
    const bool tty = ::isatty(STDIN_FILENO) != 0;
    if (tty) std::fprintf(stderr, "pyllong-chat — %s (%s)\n%s\n", ctx.model_path.c_str(), ctx.format_name, kCommands);
    LineReader reader(tty);
    while (true) {
        std::string msg;
        const ReadStatus s = reader.read_message(msg);
        if (s == ReadStatus::Interrupted) {
            clear_interrupt();
            if (!tty) return conv.finish(130);
            std::fputs("\n(Ctrl-D or /exit to quit)\n", stderr);
            continue;
        }
        if (s == ReadStatus::EndOfInput) {
            if (tty) write_out("\n");
            return conv.finish(0);
        }
        const std::string cmd = strip(msg);
        if (cmd.empty()) continue;
        if (cmd == "/exit" || cmd == "/quit") return conv.finish(0);
        if (cmd == "/reset") {
            ctx.session.reset();
            std::fputs("[conversation reset]\n", stderr);
            continue;
        }
        if (cmd == "/help") {
            std::fprintf(stderr, "%s\n", kCommands);
            continue;
        }
        if (cmd == "/system" || cmd.rfind("/system ", 0) == 0) {
            const std::string text = strip(cmd.substr(7));
            if (!text.empty()) {
                ctx.session.set_system(text);
                std::fputs("[system prompt set]\n", stderr);
            } else {
                std::fprintf(stderr, "[system prompt: %s]\n", ctx.session.system() ? ctx.session.system()->c_str() : "none");
            }
            continue;
        }
        conv.reply(msg);  // a failed turn is reported; the chat goes on
    }
}

}  // namespace pyllong::chat
