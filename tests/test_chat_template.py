"""Hardening item 14: chat templates are untrusted code, rendered only in a sandbox."""
import pytest

import pyllong
from pyllong.chat_template import ChatTemplateError, render

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_chatml_renders():
    out = render(CHATML, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert out == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("evil", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ messages.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.system('echo pwned') }}",
    "{{ messages.append({'role': 'x', 'content': 'y'}) }}",
    "{% for i in range(10**9) %}x{% endfor %}",
])
def test_malicious_templates_are_stopped(evil):
    with pytest.raises(ChatTemplateError):
        render(evil, [{"role": "user", "content": "hi"}])


def test_template_errors_are_typed():
    with pytest.raises(ChatTemplateError, match="raised: no system"):
        render("{{ raise_exception('no system') }}", [])
    with pytest.raises(ChatTemplateError):
        render("{% for %}", [])
    with pytest.raises(ChatTemplateError, match="over"):
        render("x" * (300 * 1024), [])
    assert issubclass(ChatTemplateError, pyllong.Error) and issubclass(ChatTemplateError, ValueError)
