// The message box: Enter sends, Shift+Enter adds a line, it grows with its text.

export interface ComposerElements {
  form: HTMLFormElement;
  input: HTMLTextAreaElement;
  counter: HTMLElement;
}

const MAX_HEIGHT_PX = 200;

export function installComposer(
  { form, input, counter }: ComposerElements,
  send: (text: string) => void,
): void {
  const limit = input.maxLength > 0 ? input.maxLength : Infinity;
  const resize = (): void => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, MAX_HEIGHT_PX)}px`;
    const left = limit - input.value.length;
    counter.hidden = left > 500;
    counter.textContent = `${left} characters left`;
  };
  const submit = (): void => {
    const text = input.value.trim();
    if (text === "") return;
    send(text);
    input.value = "";
    resize();
    input.focus();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    // Enter while an input method is composing (e.g. Japanese) confirms the composition.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", resize);
  resize();
}
