"""Streamlit pieces shared by the pages: cached engine and workspace, the open session,
settings controls, previews. No detection or image logic lives here: that is `core`."""
