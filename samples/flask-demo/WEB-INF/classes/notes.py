NOTES = ["Flask runs unmodified inside pycat", "routing below the context path is Flask's own"]
