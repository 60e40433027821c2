"""The Streamlit app (``streamlit run`` starts ``app.py``): pages that only draw; the rules are in
``ancora.ui``."""
