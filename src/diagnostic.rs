//! Rendering errors for people: file:line:col, the source line and a caret.
