// WebKitGTK reports the POSIX locale as the language ("C") when LANG is
// unset or C, and Intl refuses that tag; uPlot formats numbers with
// `new Intl.NumberFormat(navigator.language)` as it loads. Give such a
// window a language Intl accepts. Imported first, before anything else.

function valid(tag: string): boolean {
  try {
    new Intl.NumberFormat(tag);
    return true;
  } catch {
    return false;
  }
}

if (!valid(navigator.language)) {
  const fallback = "en-US";
  Object.defineProperty(navigator, "language", { get: () => fallback });
  Object.defineProperty(navigator, "languages", { get: () => [fallback] });
}

export {};
