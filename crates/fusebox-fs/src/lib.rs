//! Ready file systems for fusebox.
