// pyllong-chat: the standalone chat binary. At this stage it validates a model and
// prints what it is; the chat loop arrives with the forward pass.
#include <cstdio>
#include <cstring>
#include <string>

#include "core/error.h"
#include "model/model_file.h"

namespace {

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: pyllong-chat -m MODEL.gguf [options]\n"
                 "\n"
                 "Standalone pyllong chat (no Python needed).\n"
                 "\n"
                 "options:\n"
                 "  -m, --model PATH   GGUF model file (first shard of a split model)\n"
                 "  --info             validate the model and print its hyper-parameters (default action)\n"
                 "  -h, --help         show this help and exit\n");
}

}  // namespace

int main(int argc, char** argv) {
    std::string model;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            usage(stdout);
            return 0;
        } else if ((a == "-m" || a == "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (a == "--info") {
        } else {
            std::fprintf(stderr, "pyllong-chat: unknown or incomplete option '%s' (see --help)\n", a.c_str());
            return 2;
        }
    }
    if (model.empty()) {
        std::fprintf(stderr, "pyllong-chat: no model given; pass -m MODEL.gguf (see --help)\n");
        return 2;
    }
    try {
        auto mf = pyllong::ModelFile::open(model);
        const auto& hp = mf->hparams();
        std::printf("model: %s\narchitecture: %s\nlayers: %lld\nheads: %lld (kv %lld), head dim %lld\n"
                    "embedding: %lld\ncontext (train): %lld\nvocab: %s, %d tokens\n",
                    model.c_str(), hp.arch->name, (long long)hp.n_layer, (long long)hp.n_head,
                    (long long)hp.n_head_kv, (long long)hp.head_dim, (long long)hp.n_embd,
                    (long long)hp.n_ctx_train, mf->vocab().model.c_str(), mf->vocab().n_vocab());
    } catch (const pyllong::Error& e) {
        std::fprintf(stderr, "pyllong-chat: %s\n", e.what());
        return 1;
    }
    return 0;
}
